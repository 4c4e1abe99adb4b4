"""splade-onnx export step: Hugging Face masked-LM checkpoint -> fused SPLADE ONNX artifact.

This package is the only place that imports torch and transformers (``pip install "splade-onnx[export]"``).
"""
from .exporter import ExportParityError, FusedSplade, export
from .reference import splade_reference
from .tiny import fetch_splade_tiny

__all__ = ["export", "ExportParityError", "FusedSplade", "splade_reference", "fetch_splade_tiny"]
