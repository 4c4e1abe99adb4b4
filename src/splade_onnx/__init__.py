"""splade-onnx: a small, fast, torch-free runtime for SPLADE learned-sparse retrieval models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# onnxruntime >= 1.2x on Linux/macOS ships 1DS telemetry: at its first session it writes a device id and an offline
# event store under ~/.cache/Microsoft/DeveloperTools (or a `.ses` file in the working directory when HOME is not
# writable) and uploads events. A retrieval library must write nothing and open no socket unless asked to (issue 6),
# so opt out before onnxruntime is first imported; `ORT_DISABLE_TELEMETRY=0` in the environment keeps it on.
import os as _os

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
del _os

__all__ = ["Expander", "SparseVector", "Manifest", "SparseIndex", "doctor", "list_models", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from splade_onnx.artifact.manifest import Manifest
    from splade_onnx.artifact.registry import list_models
    from splade_onnx.doctor import doctor
    from splade_onnx.encode.expander import Expander
    from splade_onnx.index import SparseIndex
    from splade_onnx.vectors import SparseVector

_LAZY = {
    "Expander": "splade_onnx.encode.expander",
    "SparseVector": "splade_onnx.vectors",
    "Manifest": "splade_onnx.artifact.manifest",
    "doctor": "splade_onnx.doctor",
    "SparseIndex": "splade_onnx.index.sparse_index",
    "list_models": "splade_onnx.artifact.registry",
}


def __getattr__(name: str) -> Any:  # lazy imports keep `import splade_onnx` cheap (cold start)
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'splade_onnx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
