"""The sparse vector type returned by :class:`splade_onnx.Expander`."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np


class SparseVector:
    """A SPLADE vector: ascending vocabulary ``indices`` (int32) and their ``values`` (float32, all > 0)."""

    __slots__ = ("indices", "values")

    def __init__(self, indices: np.ndarray, values: np.ndarray) -> None:
        indices = np.asarray(indices)
        values = np.asarray(values, dtype=np.float32)
        if indices.ndim != 1 or values.shape != indices.shape:
            raise ValueError("indices and values must be 1-D arrays of the same length")
        if not np.issubdtype(indices.dtype, np.integer):
            raise TypeError("indices must be integers")
        self.indices = indices.astype(np.int32, copy=False)
        self.values = values

    @classmethod
    def from_dense(cls, row: np.ndarray) -> "SparseVector":
        """Keep the positive entries of a dense ``[vocab]`` row."""
        idx = np.flatnonzero(row > 0).astype(np.int32)
        return cls(idx, np.ascontiguousarray(row[idx], dtype=np.float32))

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def nnz(self) -> int:
        """Number of non-zero dimensions ("number of actual dimensions" in the model cards)."""
        return len(self)

    def to_dense(self, vocab_size: int) -> np.ndarray:
        out = np.zeros(vocab_size, dtype=np.float32)
        out[self.indices] = self.values
        return out

    def to_dict(self) -> Dict[str, List[Any]]:
        """``{"indices": [...], "values": [...]}``: Qdrant ``SparseVector`` / Pinecone ``sparse_values`` layout."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    def dot(self, other: "SparseVector") -> float:
        common, ia, ib = np.intersect1d(self.indices, other.indices, assume_unique=True, return_indices=True)
        return float(np.dot(self.values[ia].astype(np.float64), other.values[ib].astype(np.float64)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SparseVector(nnz={len(self)})"
