"""The numpy inverted index: :class:`SparseIndex` (exact search, explanations, atomic save / mmap load)."""

from splade_onnx.index.sparse_index import Contribution, Hit, SparseIndex, model_info

__all__ = ["SparseIndex", "Hit", "Contribution", "model_info"]
