"""Integrations with cluster and search engines.

Batch encoding: Spark (:mod:`splade_onnx.engines.spark`) and Ray Data (:mod:`splade_onnx.engines.ray`).
Bulk loading: :mod:`~splade_onnx.engines.opensearch`, :mod:`~splade_onnx.engines.elasticsearch`,
:mod:`~splade_onnx.engines.qdrant` and :mod:`~splade_onnx.engines.anserini`. Each imports its dependency lazily
(an extra of the same name).

The two encoding integrations share what is here: a per-process cache of :class:`~splade_onnx.Expander` objects
(so a worker process loads the artifact once, however many partitions or batches it encodes) and the conversion of
a batch of texts into the Arrow columns ``indices: list<int32>``, ``values: list<float32>`` (and optionally
``tokens: list<string>``). A batch is handed whole to :meth:`Expander.expand`, which tokenizes it, sorts it by
length and runs length-homogeneous sub-batches, so the vectors are exactly those of a single-process ``expand``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from splade_onnx.encode.expander import Expander
    from splade_onnx.vectors import SparseVector

log = logging.getLogger("splade_onnx")
_TRUNCATION = re.compile(r"(\d+) of \d+ text\(s\) exceed max_length")
ROLES = ("document", "query")
OUTPUT_COLUMNS = ("indices", "values", "tokens")

_CACHE: Dict[Tuple[Any, ...], "Expander"] = {}
_CACHE_LOCK = threading.Lock()


def check_role(role: str) -> str:
    """``"document"`` or ``"query"`` (anything else raises ``ValueError``)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return role


def get_expander(
    model: str,
    *,
    threads: Optional[int] = None,
    verify: bool = True,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    local_files_only: Optional[bool] = None,
) -> "Expander":
    """The Expander for ``model`` in this process, loaded on first use and kept (keyed by every argument).

    On Spark and Ray this runs inside the worker process, so each worker loads the artifact once.
    """
    key = (os.fspath(model), threads, verify, revision, cache_dir, local_files_only, os.getpid())
    with _CACHE_LOCK:
        exp = _CACHE.get(key)
        if exp is None:
            from splade_onnx.encode.expander import Expander

            exp = Expander(
                model,
                threads=threads,
                verify=verify,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
            _CACHE[key] = exp
        return exp


def clear_cache() -> None:
    """Drop the cached Expanders of this process."""
    with _CACHE_LOCK:
        _CACHE.clear()


_TRUNCATED = {"texts": 0, "warned": False}


def encode_texts(
    expander: "Expander",
    texts: Sequence[str],
    *,
    role: str = "document",
    prune: Any = None,
    batch_size: int = 32,
    max_length: Optional[int] = None,
) -> List["SparseVector"]:
    """Encode ``texts`` with the role's encoder (``encode_documents`` / ``encode_queries``) in one call.

    The Expander's "N texts were truncated" warning is logged once per process (a corpus job would otherwise
    repeat it for every batch); the running count is in :func:`truncated_count`."""
    texts = list(texts)
    if not texts:
        return []
    check_role(role)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if role == "query":
            vecs = expander.encode_queries(texts, max_length=max_length, batch_size=batch_size, prune=prune)
        else:
            vecs = expander.encode_documents(texts, max_length=max_length, batch_size=batch_size, prune=prune)
    for w in caught:
        m = _TRUNCATION.match(str(w.message))
        if m is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        _TRUNCATED["texts"] += int(m.group(1))
        if not _TRUNCATED["warned"]:
            _TRUNCATED["warned"] = True
            log.warning("%s (logged once per process)", w.message)
    return vecs


def truncated_count() -> int:
    """Texts this process has truncated at ``max_length`` through :func:`encode_texts`."""
    return int(_TRUNCATED["texts"])


def vectors_to_arrow(vectors: Sequence["SparseVector"], vocab: Optional[Sequence[str]] = None) -> Dict[str, "pa.Array"]:
    """``{"indices": list<int32>, "values": list<float32>[, "tokens": list<string>]}`` Arrow arrays, one row a vector
    (``tokens`` when ``vocab`` is given: the token string of each index)."""
    pa = import_pyarrow("Arrow output columns")
    lengths = np.fromiter((len(v.indices) for v in vectors), dtype=np.int64, count=len(vectors))
    offsets = np.zeros(len(vectors) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError("more than 2**31-1 non-zero weights in one batch; use smaller batches")
    flat_i = (
        np.concatenate([v.indices for v in vectors]).astype(np.int32, copy=False) if vectors else np.zeros(0, np.int32)
    )
    flat_v = (
        np.concatenate([v.values for v in vectors]).astype(np.float32, copy=False)
        if vectors
        else np.zeros(0, np.float32)
    )
    off = pa.array(offsets.astype(np.int32))
    out = {
        "indices": pa.ListArray.from_arrays(off, pa.array(flat_i, type=pa.int32())),
        "values": pa.ListArray.from_arrays(off, pa.array(flat_v, type=pa.float32())),
    }
    if vocab is not None:
        toks = [vocab[i] for i in flat_i.tolist()]
        out["tokens"] = pa.ListArray.from_arrays(off, pa.array(toks, type=pa.string()))
    return out


def arrow_to_vectors(indices: "pa.Array", values: "pa.Array") -> List["SparseVector"]:
    """The inverse of :func:`vectors_to_arrow`: ``list<int32>`` / ``list<float32>`` columns -> SparseVectors."""
    from splade_onnx.vectors import SparseVector

    pa = import_pyarrow("Arrow input columns")
    if isinstance(indices, pa.ChunkedArray):
        indices = indices.combine_chunks()
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    off = np.asarray(indices.offsets, dtype=np.int64)
    off_v = np.asarray(values.offsets, dtype=np.int64)
    if not np.array_equal(off - off[0], off_v - off_v[0]):
        raise ValueError("indices and values rows have different lengths")
    flat_i = np.asarray(indices.values.to_numpy(zero_copy_only=False), dtype=np.int32)[off[0] : off[-1]]
    flat_v = np.asarray(values.values.to_numpy(zero_copy_only=False), dtype=np.float32)[off_v[0] : off_v[-1]]
    rel = off - off[0]
    return [SparseVector(flat_i[rel[j] : rel[j + 1]], flat_v[rel[j] : rel[j + 1]]) for j in range(len(rel) - 1)]


def add_columns_to_batch(
    batch: "pa.RecordBatch | pa.Table",
    expander: "Expander",
    *,
    text_col: str,
    role: str,
    prune: Any,
    tokens: bool,
    batch_size: int,
    max_length: Optional[int],
) -> "pa.RecordBatch | pa.Table":
    """``batch`` with the SPLADE columns of its ``text_col`` appended (the whole batch in one ``expand`` call)."""
    if text_col not in batch.schema.names:
        raise KeyError(f"no column {text_col!r} in the input (columns: {', '.join(batch.schema.names)})")
    texts = batch.column(text_col).to_pylist()
    vecs = encode_texts(expander, texts, role=role, prune=prune, batch_size=batch_size, max_length=max_length)
    cols = vectors_to_arrow(vecs, expander.vocab if tokens else None)
    for name, arr in cols.items():
        if name in batch.schema.names:
            raise ValueError(f"the input already has a column {name!r}; rename it first")
        batch = batch.append_column(name, arr)
    return batch


def output_fields(tokens: bool) -> List[Tuple[str, str]]:
    """``(name, Spark DDL type)`` of the added columns."""
    out = [("indices", "array<int>"), ("values", "array<float>")]
    if tokens:
        out.append(("tokens", "array<string>"))
    return out


def import_pyarrow(what: str, extra: str = "parquet") -> Any:
    """``import pyarrow`` or raise :class:`~splade_onnx.errors.MissingExtraError` naming ``extra``."""
    try:
        import pyarrow
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError(extra, what, e) from e
    return pyarrow


__all__ = [
    "get_expander",
    "clear_cache",
    "encode_texts",
    "vectors_to_arrow",
    "arrow_to_vectors",
    "add_columns_to_batch",
    "check_role",
    "ROLES",
]
