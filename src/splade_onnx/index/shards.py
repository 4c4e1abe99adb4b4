"""A :class:`SparseIndex` from Parquet shards of vectors, and the merge of indexes built separately.

:func:`from_parquet` reads a folder written by ``splade-onnx encode`` (its ``manifest.json`` lists the shards in
corpus order, and a job that has not finished is refused) or any folder of Parquet files with ``id``, ``indices``
and ``values`` columns (e.g. ``df.write.parquet`` of :func:`splade_onnx.engines.spark.add_splade_columns` output;
``vocab_size`` is then required). Both go through :meth:`SparseIndex.add_csr`, one shard at a time, so the index
equals one built in process from the same vectors (same ids, order, vectors and search results).
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from splade_onnx.errors import IndexFileError

# SparseIndex comes in as ``cls`` (these functions back SparseIndex.from_parquet / .merge); importing it here would
# make a cycle with splade_onnx.index.sparse_index
SparseIndex = Any


def _manifest(folder: str) -> Optional[Dict[str, Any]]:
    from splade_onnx.io.parquet import MANIFEST_NAME, VECTORS_FORMAT, read_json

    p = os.path.join(folder, MANIFEST_NAME)
    if not os.path.isfile(p):
        return None
    man = read_json(p)
    if man.get("format") != VECTORS_FORMAT:
        raise IndexFileError("not a splade-onnx vectors manifest", p)
    return man


def shard_paths(folder: "str | os.PathLike[str]", *, verify: bool = False) -> List[str]:
    """The shard files of ``folder`` in order: the manifest's list (refused when the job has not finished; each
    file's size, and with ``verify`` its sha256, checked) or every ``*.parquet`` file, sorted."""
    from splade_onnx.io.parquet import list_parquet

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise IndexFileError("no such folder of vector shards", folder)
    man = _manifest(folder)
    if man is None:
        paths = list_parquet(folder)
        if not paths:
            raise IndexFileError("no *.parquet files (and no manifest.json)", folder)
        return paths
    shards = man.get("shards") or []
    missing = [k for k, e in enumerate(shards) if e is None]
    if missing or not man.get("complete"):
        raise IndexFileError(
            f"the encode job is not finished ({len(shards) - len(missing)} of {len(shards)} shards "
            "written); rerun the same `splade-onnx encode` command to finish it",
            folder,
        )
    out = []
    for e in shards:
        p = os.path.join(folder, e["name"])
        if not os.path.isfile(p) or os.path.getsize(p) != e["bytes"]:
            raise IndexFileError("shard is missing or has the wrong size; rerun `splade-onnx encode` to redo it", p)
        if verify:
            from splade_onnx.artifact.manifest import sha256_file

            if sha256_file(p) != e["sha256"]:
                raise IndexFileError("shard sha256 does not match the manifest; rerun `splade-onnx encode --verify`", p)
        out.append(p)
    return out


def from_parquet(
    cls: type,
    folder: "str | os.PathLike[str]",
    *,
    dtype: str = "float32",
    vocab_size: Optional[int] = None,
    vocab: Optional[Sequence[str]] = None,
    model: Optional[Dict[str, Any]] = None,
    store_texts: bool = True,
    verify: bool = False,
) -> SparseIndex:
    """Build a ``cls`` (a :class:`SparseIndex`) from a folder of Parquet vector shards (see the module docstring).

    ``vocab_size``, ``vocab`` and ``model`` default to the encode job's manifest and ``vocab.json``; texts are kept
    when the shards have a ``text`` column and ``store_texts``.
    """
    from splade_onnx.io.parquet import read_shard

    folder = os.fspath(folder)
    paths = shard_paths(folder, verify=verify)
    man = _manifest(folder)
    if man is not None:
        vocab_size = vocab_size or int(man["vocab_size"])
        vp = os.path.join(folder, man.get("vocab") or "vocab.json")
        if vocab is None and os.path.isfile(vp):
            v = read_json_list(vp)
            vocab = v if len(v) == vocab_size else None
        model = model if model is not None else man.get("model")
    if vocab_size is None:
        if vocab is None:
            raise ValueError(f"{folder} has no manifest.json: pass vocab_size (e.g. expander.vocab_size)")
        vocab_size = len(vocab)
    idx: SparseIndex = cls(vocab_size, dtype=dtype, vocab=vocab, model=model)
    for p in paths:
        sh = read_shard(p, texts=store_texts)
        try:
            idx.add_csr(sh.indptr, sh.indices, sh.values, sh.ids, sh.texts if store_texts else None)
        except (ValueError, TypeError) as e:
            raise IndexFileError(f"cannot index this shard: {e}", p) from e
    return idx


def read_json_list(path: str) -> List[str]:
    """A JSON list of strings (``vocab.json``)."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            v = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise IndexFileError(f"cannot read ({e})", path) from e
    if not isinstance(v, list):
        raise IndexFileError("expected a JSON list of tokens", path)
    return [str(t) for t in v]


def _check_mergeable(cls: type, indexes: Sequence[SparseIndex]) -> None:
    """ValueError/TypeError unless ``indexes`` can become one index: same vocabulary and model, no shared id."""
    if not indexes:
        raise ValueError("merge needs at least one index")
    for j, ix in enumerate(indexes):
        if not isinstance(ix, cls):
            raise TypeError(f"index {j} is a {type(ix).__name__}, not a {cls.__name__}")
    first = indexes[0]
    for j, ix in enumerate(indexes[1:], 1):
        if ix.vocab_size != first.vocab_size:
            raise ValueError(f"index {j} has vocab_size {ix.vocab_size}, index 0 has {first.vocab_size}")
        if ix.vocab is not None and first.vocab is not None and ix.vocab != first.vocab:
            raise ValueError(f"index {j} has another vocabulary than index 0")
        a, b = (first.model or {}).get("model_sha256"), (ix.model or {}).get("model_sha256")
        if a and b and a != b:
            raise ValueError(f"index {j} was encoded by another model (model sha256 {b[:12]}... vs {a[:12]}...)")
    owner: Dict[Any, int] = {}
    for j, ix in enumerate(indexes):
        for d in ix.ids:
            k = owner.setdefault(d, j)
            if k != j:
                raise ValueError(
                    f"document id {d!r} is in index {k} and index {j}; ids must not collide "
                    "(rename or remove the documents first)"
                )


def merge(cls: type, indexes: Sequence[SparseIndex], *, dtype: Optional[str] = None) -> SparseIndex:
    """One ``cls`` holding the documents of ``indexes``, in order (each index's documents in its insertion order).

    The indexes must share the vocabulary size (and vocabulary and model sha256 where recorded) and their ids must
    not collide: a shared id raises ``ValueError`` naming it and the two indexes. ``dtype`` defaults to the first
    index's; for ``uint8`` the merged scale is the largest input scale, so indexes quantised with one scale keep
    their exact weights. Removed documents are dropped (the inputs are compacted).
    """
    indexes = list(indexes)
    _check_mergeable(cls, indexes)
    first = indexes[0]
    dtype = dtype or first.dtype
    vocab = next((ix.vocab for ix in indexes if ix.vocab is not None), None)
    out: SparseIndex = cls(first.vocab_size, dtype=dtype, vocab=vocab, model=first.model)
    if dtype == "uint8":
        scales = [ix.scale for ix in indexes if ix.dtype == "uint8" and ix.scale]
        if scales:
            out.scale = float(max(scales))
    keep_texts = any(ix.texts is not None for ix in indexes)
    for ix in indexes:
        indptr, indices, values, ids = ix.to_csr()
        texts = None
        if keep_texts:
            texts = [ix.text(d) or "" for d in ids]
        out.add_csr(indptr, np.asarray(indices), np.asarray(values), ids, texts)
    return out


def merge_saved(
    cls: Any,
    paths: Sequence["str | os.PathLike[str]"],
    out: "str | os.PathLike[str]",
    *,
    block_size: Optional[int] = None,
    chunk: int = 1 << 24,
) -> str:
    """Merge saved indexes into one saved at ``out`` without holding the collection in memory.

    The inputs are memory-mapped and their postings copied term by term, about ``chunk`` postings at a time, into
    memory-mapped files under ``out``; the result is then saved as :meth:`SparseIndex.save` does (atomic, checksummed)
    and those files removed. Documents keep their order (each index's in turn) and ids; the stored weights are copied
    as they are, so every index must have the same ``dtype`` (and for ``uint8`` the same scale: indexes quantised
    separately would need requantizing, which :func:`merge` does). With ``block_size`` the block-max structure is
    built over the merged postings and saved too (:meth:`SparseIndex.build_blocks`; a reordering of each input is
    kept, since documents stay in place). Peak memory: about ``chunk`` postings, the ids, the block structure being
    built. Returns ``out``.
    """
    if not paths:
        raise ValueError("merge_saved needs at least one saved index")
    indexes = [cls.load(p, mmap=True) for p in paths]
    _check_mergeable(cls, indexes)
    first = indexes[0]
    for j, ix in enumerate(indexes[1:], 1):
        if ix.dtype != first.dtype:
            raise ValueError(
                f"index {j} stores {ix.dtype} weights, index 0 {first.dtype}: merge_saved copies the stored "
                "weights; use SparseIndex.merge to convert"
            )
        if ix.dtype == "uint8" and ix.scale != first.scale:
            raise ValueError(
                f"index {j} has uint8 scale {ix.scale}, index 0 {first.scale}: merge_saved copies the stored "
                "weights; use SparseIndex.merge to requantize"
            )
    if sum(len(ix) for ix in indexes) > np.iinfo(np.int32).max:
        raise ValueError("more than 2**31-1 documents")
    V = int(first.vocab_size)
    segs = [ix.term_postings() for ix in indexes]
    lens = [np.diff(s[0]) for s in segs]
    indptr = np.zeros(V + 1, np.int64)
    np.cumsum(np.sum(lens, axis=0), out=indptr[1:])
    nnz = int(indptr[-1])
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, f".tmp-merge-{uuid.uuid4().hex[:8]}")
    os.makedirs(work)
    try:
        docs_file = np.lib.format.open_memmap(os.path.join(work, "docs.npy"), "w+", np.int32, (max(nnz, 1),))
        weights_file = np.lib.format.open_memmap(
            os.path.join(work, "weights.npy"), "w+", np.dtype(first.dtype), (max(nnz, 1),)
        )
        docs, weights = docs_file[:nnz], weights_file[:nnz]
        before = np.zeros(V, np.int64)  # postings of each term written by the earlier indexes
        offset = 0
        for ix, (src, src_docs, src_weights), ln in zip(indexes, segs, lens, strict=True):
            if src[-1]:
                dst = indptr[:-1] + before
                t0 = 0
                while t0 < V:  # groups of whole terms, about `chunk` postings each
                    t1 = min(V, max(t0 + 1, int(np.searchsorted(src, src[t0] + chunk, "right")) - 1))
                    a, b = int(src[t0]), int(src[t1])
                    if b > a:
                        at = np.repeat(dst[t0:t1] - src[t0:t1], ln[t0:t1]) + np.arange(a, b)
                        docs[at] = np.asarray(src_docs[a:b]) + np.int32(offset)
                        weights[at] = np.asarray(src_weights[a:b])
                    t0 = t1
                before += ln
            offset += len(ix)
        docs_file.flush()
        weights_file.flush()
        texts = None
        if any(ix.texts is not None for ix in indexes):
            texts = [t for ix in indexes for t in (ix.texts or [""] * len(ix))]
        merged = cls.from_term_postings(
            indptr,
            docs,
            weights,
            [d for ix in indexes for d in ix.ids],
            vocab_size=V,
            dtype=first.dtype,
            scale=first.scale,
            vocab=next((i.vocab for i in indexes if i.vocab is not None), None),
            model=first.model,
            texts=texts,
        )
        del indexes, segs
        if block_size is not None:
            merged.build_blocks(block_size)
        merged.save(out)
        del merged, docs, weights, docs_file, weights_file
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


__all__ = ["from_parquet", "merge", "merge_saved", "shard_paths"]
