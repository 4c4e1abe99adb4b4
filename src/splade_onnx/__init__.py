"""splade-onnx: a small, fast, torch-free runtime for SPLADE learned-sparse retrieval models."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Expander", "SparseVector", "Manifest", "SparseIndex", "list_models", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander
    from .index import SparseIndex
    from .manifest import Manifest
    from .registry import list_models
    from .vectors import SparseVector

_LAZY = {
    "Expander": ".expander",
    "SparseVector": ".vectors",
    "Manifest": ".manifest",
    "SparseIndex": ".index",
    "list_models": ".registry",
}


def __getattr__(name: str) -> Any:  # lazy imports keep `import splade_onnx` cheap (cold start)
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'splade_onnx' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
