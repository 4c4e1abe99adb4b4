"""The ``splade-onnx`` command line."""

from splade_onnx.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
