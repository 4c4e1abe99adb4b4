"""Encode-time pruning of sparse vectors with OpenSearch's neural-sparse semantics, vectorised with numpy.

The four methods follow ``org.opensearch.neuralsearch.util.prune.PruneUtils`` (the ``prune_type`` /
``prune_ratio`` of OpenSearch's ``sparse_encoding`` ingest processor and two-phase search):

``top_k``       keep the ``k`` largest weights (``k`` a positive integer). Ties at the cut are broken by the lower
                token id (OpenSearch keeps whichever its hash map yields first; the kept *count* is the same).
``max_ratio``   keep weights ``>= ratio * max(weights)``, ``0 <= ratio < 1``.
``alpha_mass``  sort by weight, descending; keep a weight while the running sum *including it* is
                ``<= alpha * sum(weights)``, ``0 <= alpha < 1`` (so the weight that crosses the mass is dropped, and a
                vector whose largest weight alone exceeds ``alpha * total`` prunes to empty, as in OpenSearch).
                Sums are taken in float64 (OpenSearch accumulates float32; they differ only on exact float ties).
``abs_value``   keep weights ``>= threshold``, ``threshold >= 0``.

The survivors keep their ascending token-id order, so a pruned :class:`SparseVector` is a valid vector.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union, overload

import numpy as np

from splade_onnx.vectors import SparseVector

METHODS = ("top_k", "max_ratio", "alpha_mass", "abs_value")

PruneSpec = Union[None, Tuple[str, float], dict, str]


def check(method: str, value: float) -> Tuple[str, float]:
    """Validate ``(method, value)`` with OpenSearch's ranges; returns the normalised pair."""
    if not isinstance(method, str):
        raise TypeError(f"prune method must be a str, got {type(method).__name__}")
    m = method.strip().lower().replace("-", "_")
    if m not in METHODS:
        raise ValueError(f"unknown prune method {method!r} (known: {', '.join(METHODS)})")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"prune value must be a number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"prune value must be finite, got {value!r}")
    if m == "top_k" and not (v > 0 and v == np.floor(v)):
        raise ValueError(f"top_k needs a positive integer, got {value!r}")
    if m in ("max_ratio", "alpha_mass") and not (0 <= v < 1):
        raise ValueError(f"{m} needs a value in [0, 1), got {value!r}")
    if m == "abs_value" and v < 0:
        raise ValueError(f"abs_value needs a non-negative threshold, got {value!r}")
    return m, v


def parse_spec(spec: PruneSpec) -> Optional[Tuple[str, float]]:
    """``None``, ``("top_k", 64)``, ``{"method": "top_k", "value": 64}`` (or OpenSearch's ``{"prune_type": ...,
    "prune_ratio": ...}``), or the string ``"top_k=64"`` -> a validated ``(method, value)`` or ``None``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if "=" not in spec:
            raise ValueError(f"prune spec {spec!r} must look like 'top_k=64'")
        m, v = spec.split("=", 1)
        return check(m, float(v))
    if isinstance(spec, dict):
        dm: Any = spec.get("method", spec.get("prune_type"))
        dv: Any = spec.get("value", spec.get("prune_ratio"))
        if dm is None or dv is None:
            raise ValueError(f"prune spec {spec!r} needs 'method' and 'value' (or 'prune_type' and 'prune_ratio')")
        return check(dm, dv)
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return check(spec[0], spec[1])
    raise TypeError(f"prune spec must be None, (method, value), a dict or 'method=value'; got {spec!r}")


def _keep_mask(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, method: str, value: float) -> np.ndarray:
    """Boolean mask over the concatenated entries of many vectors (CSR layout) of the entries to keep."""
    n_rows = len(indptr) - 1
    nnz = values.shape[0]
    if nnz == 0:
        return np.zeros(0, dtype=bool)
    lengths = np.diff(indptr)
    row = np.repeat(np.arange(n_rows), lengths)
    if method == "abs_value":
        return values >= np.float32(value)
    if method == "max_ratio":
        nonempty = lengths > 0
        row_max = np.zeros(n_rows, dtype=np.float32)
        row_max[nonempty] = np.maximum.reduceat(values, indptr[:-1][nonempty])
        # OpenSearch compares against the float product ratio * max
        return values >= (np.float32(value) * row_max)[row]
    # top_k and alpha_mass rank the entries of each row: by row, weight descending, token id ascending
    order = np.lexsort((indices, -values, row))
    keep_sorted = np.empty(nnz, dtype=bool)
    if method == "top_k":
        rank = np.arange(nnz) - indptr[:-1][row[order]]
        keep_sorted = rank < int(value)
    else:  # alpha_mass: exact per-row running sums via a padded [rows x longest] float64 matrix, in row chunks
        v_sorted = values[order].astype(np.float64)
        pos_in_row = np.arange(nnz) - indptr[:-1][row[order]]
        keep_sorted = np.zeros(nnz, dtype=bool)
        chunk = max(1, (1 << 24) // max(1, int(lengths.max())))  # <= 128 MB of float64 per chunk
        for r0 in range(0, n_rows, chunk):
            r1 = min(n_rows, r0 + chunk)
            a, b = int(indptr[r0]), int(indptr[r1])
            if a == b:
                continue
            width = int(lengths[r0:r1].max())
            mat = np.zeros((r1 - r0, width), dtype=np.float64)
            rr = row[order][a:b] - r0
            mat[rr, pos_in_row[a:b]] = v_sorted[a:b]
            run = np.cumsum(mat, axis=1)
            totals = run[:, -1]
            keep_sorted[a:b] = run[rr, pos_in_row[a:b]] <= value * totals[rr]
    keep = np.empty(nnz, dtype=bool)
    keep[order] = keep_sorted
    return keep


@overload
def prune(vectors: SparseVector, method: str, value: float) -> SparseVector: ...
@overload
def prune(vectors: Iterable[SparseVector], method: str, value: float) -> List[SparseVector]: ...


def prune(
    vectors: Union[SparseVector, Iterable[SparseVector]], method: str, value: float
) -> Union[SparseVector, List[SparseVector]]:
    """Prune one :class:`SparseVector` or a list of them; returns the same shape (new vectors)."""
    method, value = check(method, value)
    single = isinstance(vectors, SparseVector)
    vecs: List[SparseVector] = [vectors] if isinstance(vectors, SparseVector) else list(vectors)
    for v in vecs:
        if not isinstance(v, SparseVector):
            raise TypeError(f"prune expects SparseVector(s), got {type(v).__name__}")
        if v.values.size and float(v.values.min()) <= 0:
            raise ValueError("pruned values must be positive (as in OpenSearch)")
    out = prune_many(vecs, method, value)
    return out[0] if single else out


def prune_many(vecs: Sequence[SparseVector], method: str, value: float) -> List[SparseVector]:
    """Vectorised core of :func:`prune`: all vectors are pruned in one pass over their concatenated entries."""
    if not vecs:
        return []
    lengths = np.fromiter((len(v) for v in vecs), dtype=np.int64, count=len(vecs))
    indptr = np.zeros(len(vecs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.concatenate([v.indices for v in vecs]) if indptr[-1] else np.zeros(0, np.int32)
    values = np.concatenate([v.values for v in vecs]) if indptr[-1] else np.zeros(0, np.float32)
    keep = _keep_mask(indptr, indices, values, method, value)
    row = np.repeat(np.arange(len(vecs)), lengths)
    kept_per_row = np.bincount(row[keep], minlength=len(vecs))
    new_ptr = np.zeros(len(vecs) + 1, dtype=np.int64)
    np.cumsum(kept_per_row, out=new_ptr[1:])
    ki, kv = indices[keep], values[keep]
    return [
        SparseVector(ki[new_ptr[r] : new_ptr[r + 1]].copy(), kv[new_ptr[r] : new_ptr[r + 1]].copy())
        for r in range(len(vecs))
    ]


def apply(vectors: List[Optional[SparseVector]], spec: PruneSpec) -> List[Optional[SparseVector]]:
    """Prune a result list that may hold ``None`` (failed texts) according to ``spec``; used by ``Expander``."""
    parsed = parse_spec(spec)
    if parsed is None:
        return vectors
    pos = [i for i, v in enumerate(vectors) if v is not None]
    pruned = prune_many([vectors[i] for i in pos], *parsed)  # type: ignore[misc]
    out = list(vectors)
    for i, v in zip(pos, pruned):
        out[i] = v
    return out


def iter_pruned(vectors: Iterable[SparseVector], method: str, value: float) -> Iterable[SparseVector]:
    """Lazily prune a stream of vectors (one at a time)."""
    method, value = check(method, value)
    for v in vectors:
        yield prune_many([v], method, value)[0]
