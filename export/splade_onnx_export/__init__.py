"""splade-onnx export step: Hugging Face masked-LM checkpoint -> fused SPLADE ONNX artifact.

This package is the only place that imports torch and transformers (``pip install "splade-onnx[export]"``).
``export`` runs the pipeline in exporter.py (load -> wrap -> export -> optimise -> variant -> verify ->
write).
"""

from splade_onnx.errors import ExportError, ExportParityError

from .exporter import export
from .options import ExportOptionError
from .reference import splade_reference
from .tiny import fetch_splade_tiny
from .wrapper import FusedSplade

__all__ = [
    "export",
    "ExportError",
    "ExportParityError",
    "ExportOptionError",
    "FusedSplade",
    "splade_reference",
    "fetch_splade_tiny",
]
