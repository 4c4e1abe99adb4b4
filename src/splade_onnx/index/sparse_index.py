"""A numpy-only inverted index over SPLADE vectors: exact dot-product top-k, explanations, safe persistence.

Layout: for every vocabulary id ``t`` the postings ``docs[indptr[t]:indptr[t+1]]`` (int32 document ordinals, ascending)
and their weights (float32, float16, or uint8 with one global scale). The exhaustive search gathers the postings of
the query's terms, accumulates ``query_weight * doc_weight`` per document into a dense float64 array and selects the
top k: O(P + N) per query (P postings touched, N documents); the terms held by half of the documents or more are read
from dense rows instead (:mod:`splade_onnx.index.dense_terms`, same scores). After :meth:`SparseIndex.build_blocks`
(or from ``AUTO_BLOCKS_MIN_DOCS`` documents on, when set) search uses block-max pruning
(:mod:`splade_onnx.index.blocks`): the same results, bit for bit, scoring only the blocks of documents whose upper
bound can reach the top k.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union, overload

import numpy as np

from splade_onnx.artifact.manifest import sha256_file
from splade_onnx.errors import IndexFileError
from splade_onnx.index.blocks import BlockMax
from splade_onnx.index.dense_terms import DENSE_MIN_DOCS, DenseTerms
from splade_onnx.index.reorder import bp_order_postings
from splade_onnx.vectors import SparseVector

log = logging.getLogger("splade_onnx")

INDEX_FORMAT = "splade-onnx-index"
INDEX_FORMAT_VERSION = 1
HEADER_NAME = "index.json"
DTYPES = ("float32", "float16", "uint8")
DocId = Union[str, int]
Hit = Tuple[DocId, float]
# Collections of at least this many documents get block-max pruning structures on their first search; None: only
# after build_blocks(). Off by default: the blocks pay off once similar documents share them (build_blocks(
# reorder=True), minutes at 1M documents); on documents in arbitrary order the bounds of the benchmark's generated 1M
# collection prune for under half of the real queries and save ~12% at best.
AUTO_BLOCKS_MIN_DOCS: Optional[int] = None
# blocks of 16 documents: the fastest measured at 1M documents, in arbitrary order and after reordering
DEFAULT_BLOCK_SIZE = 16


class Contribution(NamedTuple):
    """One shared token of a query and a document (``explain``)."""

    token_id: int
    token: Optional[str]
    query_weight: float
    doc_weight: float
    product: float


def _vec_arrays(v: Any) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(v, SparseVector):
        return v.indices, v.values
    if isinstance(v, dict) and "indices" in v and "values" in v:
        return np.asarray(v["indices"], dtype=np.int64), np.asarray(v["values"], dtype=np.float32)
    if hasattr(v, "indices") and hasattr(v, "values"):
        return np.asarray(v.indices), np.asarray(v.values, dtype=np.float32)
    raise TypeError(f"expected a SparseVector (or {{'indices', 'values'}}), got {type(v).__name__}")


_sha256 = sha256_file


class _Segment:
    """Postings of a contiguous range of document ordinals, term-major."""

    __slots__ = ("indptr", "docs", "weights")

    def __init__(self, indptr: np.ndarray, docs: np.ndarray, weights: np.ndarray) -> None:
        self.indptr, self.docs, self.weights = indptr, docs, weights

    @property
    def nnz(self) -> int:
        return int(self.docs.shape[0])


def _term_pointers(vocab_size: int, terms: np.ndarray) -> np.ndarray:
    """``indptr`` of term-major postings whose terms, in order, are ``terms``."""
    tindptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(np.bincount(terms, minlength=vocab_size), out=tindptr[1:])
    return tindptr


def _terms_of(vocab_size: int, indptr: np.ndarray) -> np.ndarray:
    """The term of each posting of term-major postings with pointers ``indptr``."""
    return np.repeat(np.arange(vocab_size, dtype=np.int32), np.diff(indptr))


def _group_by_term(vocab_size: int, terms: np.ndarray, docs: np.ndarray, weights: np.ndarray) -> _Segment:
    """Postings in document order -> term-major postings, documents still ascending within a term.

    A stable sort by term keeps each term's documents in ordinal order; with <= 65536 terms numpy radix-sorts
    uint16 keys in O(nnz).
    """
    key = terms.astype(np.uint16) if vocab_size <= 65536 else terms
    order = np.argsort(key, kind="stable")
    return _Segment(_term_pointers(vocab_size, terms), docs[order], weights[order])


def _invert(vocab_size: int, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, offset: int) -> _Segment:
    """Forward CSR (docs x vocab) -> term-major postings."""
    n = indptr.shape[0] - 1
    doc_of = np.repeat(np.arange(offset, offset + n, dtype=np.int32), np.diff(indptr))
    return _group_by_term(vocab_size, indices, doc_of, weights)


def _merge(vocab_size: int, segs: Sequence[_Segment]) -> _Segment:
    """Merge segments (in ordinal order) into one; postings stay ascending by document within each term."""
    if len(segs) == 1:
        return segs[0]
    terms = np.concatenate([_terms_of(vocab_size, s.indptr) for s in segs])
    docs = np.concatenate([np.asarray(s.docs) for s in segs])
    weights = np.concatenate([np.asarray(s.weights) for s in segs])
    return _group_by_term(vocab_size, terms, docs, weights)


class SparseIndex:
    """An exact inverted index over sparse vectors, with user document ids.

    Args:
        vocab_size: number of dimensions (the model's vocabulary size).
        dtype: storage of the document weights: ``"float32"`` (exact), ``"float16"`` (half the bytes) or
            ``"uint8"`` (a quarter; linear quantization with one global scale fixed by the first documents added,
            ``scale = max weight / 255``; later larger weights are clipped, with a logged warning).
        vocab: optional token strings by id, used by :meth:`explain` and saved with the index.
        model: optional provenance stored in the saved header, e.g. ``{"path": ..., "manifest_sha256": ...}``.

    Scores are exact dot products of the query weights with the *stored* document weights (accumulated in float64).
    Only documents sharing at least one token with the query (score > 0) are returned.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        dtype: str = "float32",
        vocab: Optional[Sequence[str]] = None,
        model: Optional[Dict[str, Any]] = None,
    ) -> None:
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size <= 0:
            raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocab has {len(vocab)} tokens but vocab_size is {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.dtype = dtype
        self.vocab: Optional[List[str]] = list(vocab) if vocab is not None else None
        self.model: Dict[str, Any] = dict(model or {})
        self.scale: Optional[float] = None  # uint8 only
        self._segments: List[_Segment] = []
        self._ids: List[DocId] = []
        self._pos: Dict[DocId, int] = {}
        self._alive = np.ones(0, dtype=bool)
        self._n_removed = 0
        self.texts: Optional[List[str]] = None  # optional document texts, aligned with the ordinals
        self.block_size: Optional[int] = None  # block-max pruning: None = automatic (see AUTO_BLOCKS_MIN_DOCS)
        self._blocks: Optional[BlockMax] = None
        self._blocks_seg: Optional[_Segment] = None  # the segment the block structure describes
        self._dense: Optional[DenseTerms] = None  # dense rows of the first segment's most frequent terms
        self._dense_seg: Optional[_Segment] = None  # the segment they (or their absence) describe

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def from_vectors(
        cls,
        vectors: Iterable[Any],
        ids: Optional[Sequence[DocId]] = None,
        *,
        vocab_size: Optional[int] = None,
        dtype: str = "float32",
        vocab: Optional[Sequence[str]] = None,
        model: Optional[Dict[str, Any]] = None,
    ) -> "SparseIndex":
        """Build from :class:`SparseVector` s (e.g. ``Expander.encode_documents`` output).

        ``ids`` default to ``0..n-1``. ``vocab_size`` defaults to ``len(vocab)``.
        """
        if vocab_size is None:
            if vocab is None:
                raise ValueError("pass vocab_size (e.g. expander.vocab_size) or vocab")
            vocab_size = len(vocab)
        idx = cls(vocab_size, dtype=dtype, vocab=vocab, model=model)
        idx.add(vectors, ids)
        return idx

    @classmethod
    def from_csr(
        cls,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        ids: Optional[Sequence[DocId]] = None,
        *,
        vocab_size: int,
        dtype: str = "float32",
        vocab: Optional[Sequence[str]] = None,
        model: Optional[Dict[str, Any]] = None,
    ) -> "SparseIndex":
        """Build from CSR arrays (one row per document, columns = vocabulary ids)."""
        idx = cls(vocab_size, dtype=dtype, vocab=vocab, model=model)
        idx.add_csr(indptr, indices, values, ids)
        return idx

    @classmethod
    def from_term_postings(
        cls,
        indptr: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        ids: Sequence[DocId],
        *,
        vocab_size: int,
        dtype: str = "float32",
        scale: Optional[float] = None,
        vocab: Optional[Sequence[str]] = None,
        model: Optional[Dict[str, Any]] = None,
        texts: Optional[Sequence[str]] = None,
    ) -> "SparseIndex":
        """An index over term-major postings as :meth:`term_postings` returns them: ``indptr`` [vocab_size+1],
        document ordinals ``0..len(ids)-1`` ascending within each term, weights already stored in ``dtype`` (for
        ``uint8``, ``weight * scale`` is the value). The arrays are used as they are, not copied: memory-mapped ones
        stay mapped. Shapes, dtype and each term's first and last ordinal are checked (ValueError)."""
        indptr = np.asarray(indptr)
        ids = list(ids)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if indptr.shape != (vocab_size + 1,) or int(indptr[0]) != 0 or bool(np.any(np.diff(indptr) < 0)):
            raise ValueError("indptr must have vocab_size + 1 non-decreasing entries from 0")
        nnz = int(indptr[-1])
        if docs.shape != (nnz,) or weights.shape != (nnz,):
            raise ValueError(f"docs and weights must hold indptr[-1] = {nnz} postings")
        if np.dtype(weights.dtype) != np.dtype(dtype):
            raise ValueError(f"weights are {weights.dtype}, the index stores {dtype}")
        if dtype == "uint8" and not (scale and scale > 0):
            raise ValueError("uint8 postings need their positive scale")
        if texts is not None and len(texts) != len(ids):
            raise ValueError(f"{len(texts)} texts for {len(ids)} documents")
        held = np.diff(indptr) > 0
        if nnz and (int(np.min(docs[indptr[:-1][held]])) < 0 or int(np.max(docs[indptr[1:][held] - 1])) >= len(ids)):
            raise ValueError(f"document ordinals must lie in [0, {len(ids)})")
        idx = cls(vocab_size, dtype=dtype, vocab=vocab, model=model)
        idx.scale = float(scale) if dtype == "uint8" and scale else None
        pos: Dict[DocId, int] = {}
        for j, d in enumerate(ids):
            if d in pos:
                raise ValueError(f"duplicate document id {d!r}")
            pos[d] = j
        if nnz or ids:
            idx._segments = [_Segment(indptr, docs, weights)]
        idx._ids, idx._pos = ids, pos
        idx._alive = np.ones(len(ids), dtype=bool)
        idx.texts = list(texts) if texts is not None else None
        return idx

    def term_postings(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The postings term-major, the index's own arrays (the CSC form of the documents x vocabulary matrix):
        ``indptr`` [vocab_size+1], document ordinals (positions in :attr:`ids`) ascending within each term, and the
        stored weights (``dtype``; times :attr:`scale` for ``uint8``). Compacts first (removed documents dropped).
        Memory-mapped arrays are returned mapped: do not write to them."""
        self.compact()
        if not self._segments:
            return np.zeros(self.vocab_size + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, self._np_dtype)
        seg = self._segments[0]
        return np.asarray(seg.indptr), seg.docs, seg.weights

    @classmethod
    def from_expander(
        cls,
        expander: Any,
        texts: Sequence[str],
        ids: Optional[Sequence[DocId]] = None,
        *,
        dtype: str = "float32",
        max_length: Optional[int] = None,
        store_texts: bool = False,
        progress: bool = False,
    ) -> "SparseIndex":
        """Encode ``texts`` as documents with ``expander`` and index them (vocab and model provenance included;
        the texts too with ``store_texts=True``; a tqdm bar with ``progress=True``)."""
        texts = list(texts)
        if progress:
            doc_len = max_length or expander.manifest.max_length["document"]
            vecs = list(expander.expand_iter(texts, progress=True, total=len(texts), max_length=doc_len))
        else:
            vecs = expander.encode_documents(texts, max_length=max_length)
        idx = cls(expander.vocab_size, dtype=dtype, vocab=expander.vocab, model=model_info(expander))
        idx.add(vecs, ids, texts if store_texts else None)
        return idx

    def add(
        self, vectors: Iterable[Any], ids: Optional[Sequence[DocId]] = None, texts: Optional[Sequence[str]] = None
    ) -> None:
        """Add documents (SparseVectors). ``ids`` default to consecutive ints after the last ordinal; ``texts``
        (optional) are stored and saved with the index, for display."""
        vecs = [_vec_arrays(v) for v in vectors]
        lengths = np.fromiter((len(i) for i, _ in vecs), dtype=np.int64, count=len(vecs))
        indptr = np.zeros(len(vecs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate([i for i, _ in vecs]) if vecs else np.zeros(0, np.int32)
        values = np.concatenate([v for _, v in vecs]) if vecs else np.zeros(0, np.float32)
        self.add_csr(indptr, indices, values, ids, texts)

    def add_csr(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        ids: Optional[Sequence[DocId]] = None,
        texts: Optional[Sequence[str]] = None,
    ) -> None:
        """Add documents given as CSR arrays (and optionally their texts)."""
        indptr = np.asarray(indptr, dtype=np.int64)
        indices = np.asarray(indices)
        values = np.asarray(values, dtype=np.float32)
        n = indptr.shape[0] - 1
        if indptr.ndim != 1 or n < 0 or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
            raise ValueError("indptr must be 1-D, start at 0 and be non-decreasing")
        if indices.shape != values.shape or indices.ndim != 1 or int(indptr[-1]) != indices.shape[0]:
            raise ValueError("indices and values must be 1-D with len == indptr[-1]")
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= self.vocab_size):
            raise ValueError(f"term ids must be in [0, {self.vocab_size})")
        if values.size and not (np.all(np.isfinite(values)) and float(values.min()) >= 0):
            raise ValueError("weights must be finite and >= 0")
        start = len(self._ids)
        if ids is None:
            ids = list(range(start, start + n))
        else:
            ids = list(ids)
            if len(ids) != n:
                raise ValueError(f"{len(ids)} ids for {n} documents")
        new_pos: Dict[DocId, int] = {}
        for j, d in enumerate(ids):
            if isinstance(d, (np.integer,)):
                d = int(d)
                ids[j] = d
            if isinstance(d, bool) or not isinstance(d, (str, int)):
                raise TypeError(f"document ids must be str or int, got {type(d).__name__} at position {j}")
            if d in self._pos or d in new_pos:
                raise ValueError(f"duplicate document id {d!r}")
            new_pos[d] = start + j
        if texts is not None and len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} documents")
        if n == 0:
            return
        if start + n > np.iinfo(np.int32).max:
            raise ValueError("more than 2**31-1 documents")
        weights = self._encode_weights(values)
        seg = _invert(self.vocab_size, indptr, indices.astype(np.int32, copy=False), weights, start)
        self._segments.append(seg)
        if texts is not None or self.texts is not None:
            if self.texts is None:
                self.texts = [""] * start
            self.texts.extend(str(t) for t in texts) if texts is not None else self.texts.extend([""] * n)
        self._ids.extend(ids)
        self._pos.update(new_pos)
        self._alive = np.concatenate([self._alive, np.ones(n, dtype=bool)])
        if len(self._segments) > 8:
            self._segments = [_merge(self.vocab_size, self._segments)]

    def _encode_weights(self, values: np.ndarray) -> np.ndarray:
        if self.dtype == "float32":
            return values.astype(np.float32, copy=False)
        if self.dtype == "float16":
            return values.astype(np.float16)
        if self.scale is None:
            vmax = float(values.max()) if values.size else 0.0
            self.scale = (vmax / 255.0) if vmax > 0 else 1.0 / 255.0
        q = np.rint(values / self.scale)
        if values.size and q.max() > 255:
            log.warning(
                "%d weight(s) above the uint8 range (max %.3f) were clipped to %.3f",
                int((q > 255).sum()),
                float(values.max()),
                255 * self.scale,
            )
        q = np.clip(q, 1, 255)  # a positive weight never quantizes to 0: the support is kept
        q[values == 0] = 0
        return q.astype(np.uint8)

    def remove(self, ids: Union[DocId, Iterable[DocId]]) -> int:
        """Remove documents by id (tombstones; :meth:`compact` or :meth:`save` drops them). Returns how many.

        An unknown id raises ``KeyError``.
        """
        if isinstance(ids, (str, int, np.integer)):
            ids = [ids]
        ords = []
        for d in ids:
            d = int(d) if isinstance(d, np.integer) else d
            if d not in self._pos:
                raise KeyError(f"no document with id {d!r} in the index")
            ords.append(self._pos.pop(d))
        if ords:
            self._alive[np.asarray(ords)] = False
            self._n_removed += len(ords)
        return len(ords)

    def compact(self) -> None:
        """Merge segments and drop removed documents (ordinals are renumbered, insertion order kept)."""
        if not self._segments:
            return
        seg = _merge(self.vocab_size, self._segments)
        if self._n_removed:
            alive = self._alive
            keep = alive[seg.docs]
            new_ord = np.cumsum(alive, dtype=np.int64) - 1
            terms = _terms_of(self.vocab_size, seg.indptr)[keep]
            seg = _Segment(
                _term_pointers(self.vocab_size, terms),
                new_ord[np.asarray(seg.docs)[keep]].astype(np.int32),
                np.asarray(seg.weights)[keep],
            )
            if self.texts is not None:
                self.texts = [t for t, a in zip(self.texts, alive.tolist(), strict=False) if a]
            self._ids = [d for d, a in zip(self._ids, alive.tolist(), strict=False) if a]
            self._pos = {d: i for i, d in enumerate(self._ids)}
            self._alive = np.ones(len(self._ids), dtype=bool)
            self._n_removed = 0
        self._segments = [seg] if seg.nnz or self._ids else []

    # ------------------------------------------------------------------------------------------------ info
    def __len__(self) -> int:
        """Number of (not removed) documents."""
        return len(self._ids) - self._n_removed

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._pos

    def text(self, doc_id: DocId) -> Optional[str]:
        """The stored text of a document (``None`` when the index keeps no texts)."""
        if doc_id not in self._pos:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        return self.texts[self._pos[doc_id]] if self.texts is not None else None

    @property
    def ids(self) -> List[DocId]:
        """Document ids in insertion order (removed ones excluded)."""
        if not self._n_removed:
            return list(self._ids)
        return [d for d, a in zip(self._ids, self._alive.tolist(), strict=False) if a]

    @property
    def nnz(self) -> int:
        """Stored postings (removed documents' postings included until compaction)."""
        return sum(s.nnz for s in self._segments)

    @property
    def nbytes(self) -> int:
        return sum(s.docs.nbytes + s.weights.nbytes + s.indptr.nbytes for s in self._segments)

    def __repr__(self) -> str:
        return f"SparseIndex(docs={len(self)}, postings={self.nnz}, vocab_size={self.vocab_size}, dtype={self.dtype!r})"

    def _dequant(self, w: np.ndarray) -> np.ndarray:
        if self.dtype == "uint8":
            return w.astype(np.float64) * float(self.scale or 0.0)
        return w.astype(np.float64)

    def to_csr(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[DocId]]:
        """The stored (de-quantized) document vectors as CSR arrays ``(indptr, indices, values, ids)``."""
        if not self._segments:
            return np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), []
        self.compact()
        seg = self._segments[0]
        terms = _terms_of(self.vocab_size, seg.indptr)
        order = np.argsort(np.asarray(seg.docs), kind="stable")
        docs = np.asarray(seg.docs)[order]
        indptr = np.zeros(len(self._ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=len(self._ids)), out=indptr[1:])
        return indptr, terms[order], self._dequant(np.asarray(seg.weights)[order]).astype(np.float32), list(self._ids)

    # ------------------------------------------------------------------------------------------------ search
    def _query(self, q: Any, max_terms: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
        terms, qw = _vec_arrays(q)
        terms = np.asarray(terms, dtype=np.int64)
        qw = np.asarray(qw, dtype=np.float64)
        keep = (qw > 0) & (terms >= 0) & (terms < self.vocab_size)
        terms, qw = terms[keep], qw[keep]
        if max_terms is not None and terms.size > max_terms:
            top = np.argsort(-qw, kind="stable")[:max_terms]
            terms, qw = terms[top], qw[top]
        return terms, qw

    def _top(self, scores: np.ndarray, k: int) -> List[Hit]:
        if self._n_removed:
            scores[~self._alive] = 0.0
        nz = np.flatnonzero(scores > 0)
        if nz.size > k:
            vals = scores[nz]
            thr = np.partition(vals, nz.size - k)[nz.size - k]
            nz = nz[vals >= thr]
        s = scores[nz]
        order = np.lexsort((nz, -s))[:k]  # best first, ties by insertion order
        ids = self._ids
        return [(ids[int(nz[i])], float(s[i])) for i in order]

    # ------------------------------------------------------------------------------------------------ pruning
    def build_blocks(self, block_size: int = DEFAULT_BLOCK_SIZE, *, reorder: bool = False) -> None:
        """Build (now) the block-max pruning structure over blocks of ``block_size`` consecutive documents (a power
        of two) and use it from now on, whatever the collection's size. Search results do not change; only which
        postings are read. It is rebuilt lazily when :meth:`compact` or a segment merge changes the postings;
        documents added since the last build are scored exhaustively until then.

        ``reorder=True`` first groups similar documents into the same blocks (:meth:`reorder_documents`), which is
        what makes the block bounds tight enough to skip most blocks."""
        if block_size < 1 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {block_size!r}")
        if reorder:
            self.reorder_documents(leaf_size=block_size)
        self.block_size = int(block_size)
        self._blocks = None
        self._block_index()

    def reorder_documents(self, *, leaf_size: int = 16, **options: Any) -> None:
        """Renumber the documents so that similar ones get neighbouring ordinals (recursive graph bisection,
        :func:`splade_onnx.index.reorder.bp_order_postings`; ``options`` go to it). Ids, texts and scores do not change;
        equal scores are still returned in ordinal order, which is now the new order. Compacts first."""
        self.compact()
        if not self._segments or len(self._ids) <= 1:
            return
        seg = self._segments[0]
        n_docs = len(self._ids)
        terms = _terms_of(self.vocab_size, seg.indptr)
        docs = np.asarray(seg.docs)
        order = bp_order_postings(
            docs, terms, np.asarray(seg.weights), n_docs, self.vocab_size, leaf_size=leaf_size, **options
        )
        new_of_old = np.empty(n_docs, np.int32)
        new_of_old[order] = np.arange(n_docs, dtype=np.int32)
        indptr = np.asarray(seg.indptr)
        weights = np.asarray(seg.weights)
        new_docs = np.empty(docs.shape[0], np.int32)
        new_weights = np.empty_like(weights)
        t0 = 0
        while t0 < self.vocab_size:  # each term's postings ascending by the new ordinals, in chunks of whole terms
            t1 = min(self.vocab_size, max(t0 + 1, int(np.searchsorted(indptr, indptr[t0] + (1 << 24), "right")) - 1))
            a, b = int(indptr[t0]), int(indptr[t1])
            if b > a:
                nd = new_of_old[docs[a:b]]
                o = np.lexsort((nd, terms[a:b]))
                new_docs[a:b] = nd[o]
                new_weights[a:b] = weights[a:b][o]
            t0 = t1
        self._segments = [_Segment(indptr.copy(), new_docs, new_weights)]
        ids = self._ids
        self._ids = [ids[i] for i in order.tolist()]
        self._pos = {d: i for i, d in enumerate(self._ids)}
        if self.texts is not None:
            texts = self.texts
            self.texts = [texts[i] for i in order.tolist()]
        self._blocks, self._blocks_seg = None, None
        self._dense, self._dense_seg = None, None

    def _block_index(self) -> Optional[BlockMax]:
        """The block structure of the first segment, (re)built when enabled and stale; None when not in use."""
        if not self._segments:
            return None
        seg = self._segments[0]
        if self._blocks is not None and self._blocks_seg is seg:
            return self._blocks
        if not seg.nnz:
            return None
        if self.block_size is None and (AUTO_BLOCKS_MIN_DOCS is None or len(self._ids) < AUTO_BLOCKS_MIN_DOCS):
            return None  # decided before touching the postings: this runs on every search
        n0 = self._segment_docs(seg)
        if self.block_size is None and AUTO_BLOCKS_MIN_DOCS is not None and n0 < AUTO_BLOCKS_MIN_DOCS:
            return None
        bs = self.block_size or DEFAULT_BLOCK_SIZE
        self._blocks = BlockMax.build(
            seg.indptr,
            seg.docs,
            seg.weights,
            n0,
            bs,
            dequant=float(self.scale or 0.0) if self.dtype == "uint8" else 1.0,
        )
        self._blocks_seg = seg
        return self._blocks

    def _segment_docs(self, seg: _Segment) -> int:
        """Documents of the first segment: its ordinals are ``0..n0-1`` (later segments hold larger ones; trailing
        documents without postings, if any, score 0 anyway). Read from each term's first and last posting (a term's
        ordinals ascend), so O(vocabulary); an ordinal out of range raises IndexFileError."""
        indptr = np.asarray(seg.indptr)
        held = np.diff(indptr) > 0
        if not held.any():
            return 0
        docs = np.asarray(seg.docs)
        n0 = int(np.max(docs[indptr[1:][held] - 1])) + 1
        if n0 > len(self._ids) or int(np.min(docs[indptr[:-1][held]])) < 0:
            raise IndexFileError("postings hold a document ordinal out of range: the index is corrupt")
        return n0

    def _dense_index(self) -> Optional[DenseTerms]:
        """Dense rows of the first segment's most frequent terms, built when missing or stale; None for a
        segment of fewer than ``DENSE_MIN_DOCS`` documents."""
        if not self._segments:
            return None
        seg = self._segments[0]
        if self._dense_seg is seg:
            return self._dense
        n0 = self._segment_docs(seg)
        self._dense = DenseTerms.build(seg.indptr, seg.docs, seg.weights, n0) if n0 >= DENSE_MIN_DOCS else None
        self._dense_seg = seg
        return self._dense

    @property
    def pruning_nbytes(self) -> int:
        """Bytes of the block-max pruning structure (0 when none is built)."""
        return self._blocks.nbytes if self._blocks is not None else 0

    @property
    def dense_nbytes(self) -> int:
        """Bytes of the dense rows of the most frequent terms (0 when none are built)."""
        return self._dense.nbytes if self._dense is not None else 0

    # ------------------------------------------------------------------------------------------------ search
    @overload
    def search(
        self,
        queries: Union[List[Any], Tuple[Any, ...]],
        k: int = 10,
        *,
        max_query_terms: Optional[int] = None,
        accuracy: float = 1.0,
        exhaustive: bool = False,
        workers: int = 1,
    ) -> List[List[Hit]]: ...

    @overload
    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        max_query_terms: Optional[int] = None,
        accuracy: float = 1.0,
        exhaustive: bool = False,
        workers: int = 1,
    ) -> List[Hit]: ...

    def search(
        self,
        queries: Any,
        k: int = 10,
        *,
        max_query_terms: Optional[int] = None,
        accuracy: float = 1.0,
        exhaustive: bool = False,
        workers: int = 1,
    ) -> Union[List[Hit], List[List[Hit]]]:
        """Exact top-``k`` documents by dot product: ``[(doc_id, score), ...]`` best first, ties by insertion order.

        ``queries``: one SparseVector (returns one list) or a list/tuple of them (returns a list of lists).
        ``accuracy`` (0 < accuracy <= 1, default 1 = exact): the approximate mode's one knob; a block of documents
        is scored only while ``accuracy * its upper bound`` reaches the current k-th best score, so lower values
        skip more blocks (faster, some top-k documents may be missed). ``exhaustive=True`` scores every posting of
        the query's terms (the reference path; same results as the default exact search). ``max_query_terms`` keeps
        only the heaviest query terms (approximate). ``workers > 1`` searches a batch on that many threads (numpy
        releases the GIL in part of the scoring; results are the same, in query order).
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not isinstance(accuracy, (int, float)) or not 0 < accuracy <= 1:
            raise ValueError(f"accuracy must be in (0, 1], got {accuracy!r}")
        if not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        single = not isinstance(queries, (list, tuple))
        qs = [queries] if single else list(queries)
        self._block_index()  # built (if due) once, before any thread needs it
        self._dense_index()
        if workers > 1 and len(qs) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=int(workers)) as pool:
                out = list(
                    pool.map(lambda q: self._search_one(q, int(k), max_query_terms, float(accuracy), exhaustive), qs)
                )
        else:
            out = [self._search_one(q, int(k), max_query_terms, float(accuracy), exhaustive) for q in qs]
        return out[0] if single else out

    def search_stats(self, query: Any, k: int = 10, *, accuracy: float = 1.0) -> Dict[str, int]:
        """How the (pruned) search of one query went: ``blocks`` (0 when no block structure is in use),
        ``blocks_bounded`` (blocks whose own bound was computed: those of the superblocks taken), ``blocks_scored``,
        ``blocks_dropped`` (blocks taken in a round but dropped when the query's heaviest terms showed they cannot
        reach the threshold), ``rounds`` and ``gave_up`` (1 when the bounds could not prune and the exhaustive scan
        ran instead)."""
        stats: Dict[str, int] = {
            "blocks": 0,
            "blocks_bounded": 0,
            "blocks_scored": 0,
            "blocks_dropped": 0,
            "rounds": 0,
            "gave_up": 0,
        }
        self._search_one(query, int(k), None, float(accuracy), False, stats)
        return stats

    def _search_one(
        self,
        q: Any,
        k: int,
        max_terms: Optional[int],
        accuracy: float,
        exhaustive: bool,
        stats: Optional[Dict[str, int]] = None,
    ) -> List[Hit]:
        n = len(self._ids)
        terms, qw = self._query(q, max_terms)
        if not n:
            return []
        bm = None if exhaustive else self._block_index()
        if bm is None:
            if accuracy < 1 and not exhaustive and self._segments:
                bm = self._approx_blocks()
            if bm is None:
                return self._top(self._score_one(terms, qw, n), k)
        n0 = bm.n_docs
        seed_o, seed_s = np.zeros(0, np.int64), np.zeros(0, np.float64)
        if n > n0:  # documents added since the structure was built: scored exhaustively
            acc = self._score_one(terms, qw, n, segments=self._segments[1:], offset=n0)
            if self._n_removed:
                acc[~self._alive[n0:]] = 0.0
            nz = np.flatnonzero(acc > 0)
            seed_o, seed_s = nz + n0, acc[nz]
        seg = self._segments[0]
        ords, scores, info = bm.search(
            terms,
            qw,
            k,
            seg.docs,
            seg.weights,
            float(self.scale or 0.0) if self.dtype == "uint8" else None,
            self._alive if self._n_removed else None,
            (seed_o, seed_s),
            accuracy=accuracy,
        )
        if stats is not None:
            stats.update(info)
        if ords is None:  # the bounds cannot prune this query: the exhaustive scan is cheaper
            return self._top(self._score_one(terms, qw, n), k)
        order = np.lexsort((ords, -scores))[:k]  # best first, ties by insertion order
        ids = self._ids
        return [(ids[int(ords[i])], float(scores[i])) for i in order]

    def _approx_blocks(self) -> Optional[BlockMax]:
        """For the approximate mode on a collection below the automatic size: build the structure on demand."""
        if self.block_size is None:
            self.block_size = DEFAULT_BLOCK_SIZE
        return self._block_index()

    def _score_one(
        self, terms: np.ndarray, qw: np.ndarray, n: int, segments: Optional[Sequence[_Segment]] = None, offset: int = 0
    ) -> np.ndarray:
        """Scores of one query: for each query term, add ``q * w`` into a dense float64 accumulator (of the
        ordinals ``offset..n-1``; ``segments`` default to all).

        A term's postings hold each document at most once, so ``acc[docs] = acc[docs] + ...`` (a take and a put) is
        exact; this touches each posting once, without concatenating the postings first. The first segment's most
        frequent terms are read from their dense rows (:mod:`splade_onnx.index.dense_terms`) instead: the same
        weights added in the same order, so the same scores, bit for bit.
        """
        acc = np.zeros(n - offset, dtype=np.float64)
        segs = self._segments if segments is None else segments
        dense = self._dense_index() if offset == 0 and segs and segs[0] is self._segments[0] else None
        for si, seg in enumerate(segs):
            indptr = seg.indptr
            starts = indptr[terms].tolist()
            ends = indptr[terms + 1].tolist()
            rows = dense.row_of[terms].tolist() if dense is not None and si == 0 else [-1] * len(starts)
            for q, s, e, r in zip(qw.tolist(), starts, ends, rows, strict=False):
                if r >= 0 and dense is not None:
                    row = self._dequant(dense.dense_rows[r])
                    row *= q
                    acc[: row.shape[0]] += row
                elif e > s:
                    d = seg.docs[s:e]
                    # a term's ordinals ascend, so its first and last bound them all: a corrupt posting is refused
                    # instead of wrapping around (negative) or indexing past the end
                    if d[0] < offset or d[-1] >= n:
                        raise IndexFileError("postings hold a document ordinal out of range: the index is corrupt")
                    if offset:
                        d = d - offset
                    w = seg.weights[s:e]
                    x = self._dequant(w) * q if self.dtype == "uint8" else np.multiply(w, q, dtype=np.float64)
                    x += acc.take(d)
                    acc.put(d, x)
        return acc

    def explain(
        self, query: Any, doc_id: DocId, top_k: Optional[int] = 10, *, vocab: Optional[Sequence[str]] = None
    ) -> List[Contribution]:
        """The tokens shared by ``query`` and document ``doc_id``: query weight, document weight and their product,
        largest product first (ties by token id). The products sum to the document's score.
        Token strings come from ``vocab`` or the index's own vocab (``None`` otherwise)."""
        if isinstance(doc_id, np.integer):
            doc_id = int(doc_id)
        if doc_id not in self._pos:
            raise KeyError(f"no document with id {doc_id!r} in the index")
        o = self._pos[doc_id]
        terms, qw = self._query(query, None)
        vocab = vocab if vocab is not None else self.vocab
        rows: List[Tuple[float, int, float, float]] = []
        for seg in self._segments:
            for t, w in zip(terms.tolist(), qw.tolist(), strict=False):
                s, e = int(seg.indptr[t]), int(seg.indptr[t + 1])
                if s == e:
                    continue
                p = s + int(np.searchsorted(seg.docs[s:e], o))
                if p < e and int(seg.docs[p]) == o:
                    dw = float(self._dequant(np.asarray(seg.weights[p : p + 1]))[0])
                    rows.append((w * dw, t, w, dw))
        rows.sort(key=lambda r: (-r[0], r[1]))
        if top_k is not None:
            rows = rows[:top_k]
        return [Contribution(t, vocab[t] if vocab is not None else None, w, dw, p) for p, t, w, dw in rows]

    # ------------------------------------------------------------------------------------------------ persistence
    def save(self, path: "str | os.PathLike[str]") -> str:
        """Write the index to the folder ``path`` atomically; removed documents are dropped (compaction).

        The folder holds ``index.json`` (the header) and a data subfolder of ``.npy`` arrays plus ``ids.json``
        (and ``vocab.json`` when known). New data goes to a fresh subfolder; the header is then replaced with
        ``os.replace``, the single commit point, so an interrupted save leaves the previous index readable.
        """
        path = os.fspath(path)
        self.compact()
        os.makedirs(path, exist_ok=True)
        header_path = os.path.join(path, HEADER_NAME)
        if not os.path.isfile(header_path) and os.listdir(path):
            stray = [f for f in os.listdir(path) if not f.startswith(("data-", ".tmp-"))]
            if stray:
                raise FileExistsError(f"{path} exists and is not a splade-onnx index; choose an empty or new folder")
        data_name = f"data-{uuid.uuid4().hex[:12]}"
        data_dir = os.path.join(path, data_name)
        os.makedirs(data_dir)
        seg = (
            self._segments[0]
            if self._segments
            else _Segment(np.zeros(self.vocab_size + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, self._np_dtype))
        )
        arrays = {
            "term_indptr": np.asarray(seg.indptr, dtype=np.int64),
            "post_docs": np.asarray(seg.docs),
            "post_weights": np.asarray(seg.weights),
        }
        bm = self._block_index() if self._segments else None
        if bm is not None:  # the pruning structure is saved too, so a loaded index need not rebuild it
            arrays.update({"blocks_" + name: np.asarray(a) for name, a in bm.arrays.items()})
        dense = self._dense_index() if self._segments else None
        if dense is not None:  # so are the dense rows
            arrays.update({name: np.asarray(a) for name, a in dense.arrays.items()})
        files: Dict[str, Dict[str, Any]] = {}
        for name, arr in arrays.items():
            fn = name + ".npy"
            fp = os.path.join(data_dir, fn)
            with open(fp, "wb") as f:
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[fn] = {
                "shape": list(arr.shape),
                "dtype": str(arr.dtype),
                "bytes": os.path.getsize(fp),
                "sha256": _sha256(fp),
            }
        jsons: Dict[str, Any] = {"ids.json": self._ids}
        if self.vocab is not None:
            jsons["vocab.json"] = self.vocab
        if self.texts is not None:
            jsons["texts.json"] = self.texts
        for fn, obj in jsons.items():
            fp = os.path.join(data_dir, fn)
            with open(fp, "w", encoding="utf-8") as fj:
                json.dump(obj, fj, ensure_ascii=False)
                fj.flush()
                os.fsync(fj.fileno())
            files[fn] = {"bytes": os.path.getsize(fp), "sha256": _sha256(fp)}
        header = {
            "format": INDEX_FORMAT,
            "format_version": INDEX_FORMAT_VERSION,
            "data": data_name,
            "vocab_size": self.vocab_size,
            "dtype": self.dtype,
            "scale": self.scale,
            "n_docs": len(self._ids),
            "nnz": seg.nnz,
            "model": self.model,
            "files": files,
        }
        if bm is not None:
            header["blocks"] = bm.meta
        if dense is not None:
            header["dense_terms"] = dense.meta
        tmp = os.path.join(path, f".tmp-{HEADER_NAME}-{uuid.uuid4().hex[:8]}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(header, fh, indent=1, ensure_ascii=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, header_path)  # the commit point
        _fsync_dir(path)
        for old in os.listdir(path):  # earlier data folders and leftovers of interrupted saves
            if old != data_name and (old.startswith("data-") or old.startswith(".tmp-")):
                shutil.rmtree(os.path.join(path, old), ignore_errors=True) if os.path.isdir(
                    os.path.join(path, old)
                ) else _unlink(os.path.join(path, old))
        return path

    @property
    def _np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    @classmethod
    def load(cls, path: "str | os.PathLike[str]", mmap: bool = True, verify: bool = False) -> "SparseIndex":
        """Open a saved index (see :meth:`_load_once`). A save that commits while this load reads (the old data
        folder is deleted under it) is detected by the header having moved on, and the load restarts from the new
        header, so readers during a save always get a complete index, the old or the new one."""
        for attempt in range(5):
            header_before = _header_data(path)
            try:
                return cls._load_once(path, mmap=mmap, verify=verify)
            except (IndexFileError, FileNotFoundError):  # a file of the old data folder deleted under the load
                if attempt == 4 or header_before is None or _header_data(path) == header_before:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _load_once(cls, path: "str | os.PathLike[str]", mmap: bool = True, verify: bool = False) -> "SparseIndex":
        """Open a saved index. Loading never unpickles (``allow_pickle=False``; ids and vocab are JSON).

        Always checked (cheap): the header, every file's presence, byte size, ``.npy`` shape and dtype, and the
        consistency of the term pointers with the postings. ``verify=True`` also checks every file's sha256 (reads
        everything once). With ``mmap=True`` the postings stay on disk (memory-mapped, read-only) and are paged in by
        the searches that touch them. A corrupt, truncated or missing file raises :class:`IndexFileError` naming it.
        """
        path = os.fspath(path)
        header_path = os.path.join(path, HEADER_NAME)
        if not os.path.isfile(header_path):
            raise IndexFileError("no index header here; is this a folder written by SparseIndex.save?", header_path)
        try:
            with open(header_path, encoding="utf-8") as f:
                h = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IndexFileError(f"header is not valid JSON ({e})", header_path) from e
        if not isinstance(h, dict) or h.get("format") != INDEX_FORMAT:
            raise IndexFileError(f"not a splade-onnx index header (format {INDEX_FORMAT!r} expected)", header_path)
        if h.get("format_version") != INDEX_FORMAT_VERSION:
            raise IndexFileError(
                f"index format version {h.get('format_version')!r} is not supported "
                f"(this splade-onnx reads {INDEX_FORMAT_VERSION}); re-build the index",
                header_path,
            )
        try:
            data_dir = os.path.join(path, str(h["data"]))
            files: Dict[str, Dict[str, Any]] = h["files"]
            n_docs, nnz, vocab_size, dtype = int(h["n_docs"]), int(h["nnz"]), int(h["vocab_size"]), str(h["dtype"])
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFileError(f"header lacks a field ({e})", header_path) from e
        if dtype not in DTYPES:
            raise IndexFileError(f"unknown weight dtype {dtype!r}", header_path)
        for fn, meta in files.items():
            fp = os.path.join(data_dir, fn)
            if not os.path.isfile(fp):
                raise IndexFileError("file is missing", fp)
            size = os.path.getsize(fp)
            if size != meta.get("bytes"):
                raise IndexFileError(
                    f"file has {size} bytes, the header says {meta.get('bytes')}: truncated or "
                    "replaced; restore it or re-build the index",
                    fp,
                )
            if verify and _sha256(fp) != meta.get("sha256"):
                raise IndexFileError("sha256 does not match the header: the file is corrupt", fp)
        expect = {
            "term_indptr.npy": ((vocab_size + 1,), "int64"),
            "post_docs.npy": ((nnz,), "int32"),
            "post_weights.npy": ((nnz,), dtype),
        }
        arrays: Dict[str, np.ndarray] = {}
        for fn, (shape, dt) in expect.items():
            fp = os.path.join(data_dir, fn)
            if fn not in files:
                raise IndexFileError("file is not listed in the header", fp)
            try:
                arr = np.load(fp, mmap_mode="r" if mmap else None, allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError on bad files
                raise IndexFileError(f"not a readable .npy file ({type(e).__name__}: {e})", fp) from e
            if arr.shape != shape or str(arr.dtype) != dt:
                raise IndexFileError(f"array is {arr.dtype}{list(arr.shape)}, expected {dt}{list(shape)}", fp)
            arrays[fn] = arr
        tip = np.asarray(arrays["term_indptr.npy"])
        ip_path = os.path.join(data_dir, "term_indptr.npy")
        if tip[0] != 0 or tip[-1] != nnz or np.any(np.diff(tip) < 0):
            raise IndexFileError("term pointers are not a valid CSR pointer array: the file is corrupt", ip_path)
        ids = _load_json(os.path.join(data_dir, "ids.json"))
        if not isinstance(ids, list) or len(ids) != n_docs:
            raise IndexFileError(f"expected a list of {n_docs} ids", os.path.join(data_dir, "ids.json"))
        vocab = None
        if "vocab.json" in files:
            vocab = _load_json(os.path.join(data_dir, "vocab.json"))
            if not isinstance(vocab, list) or len(vocab) != vocab_size:
                raise IndexFileError(f"expected a list of {vocab_size} tokens", os.path.join(data_dir, "vocab.json"))
        idx = cls(vocab_size, dtype=dtype, vocab=vocab, model=h.get("model") or {})
        if "texts.json" in files:
            texts = _load_json(os.path.join(data_dir, "texts.json"))
            if not isinstance(texts, list) or len(texts) != n_docs:
                raise IndexFileError(f"expected a list of {n_docs} texts", os.path.join(data_dir, "texts.json"))
            idx.texts = texts
        idx.scale = h.get("scale")
        if n_docs:
            idx._segments = [_Segment(tip, arrays["post_docs.npy"], arrays["post_weights.npy"])]
        idx._ids = ids
        idx._pos = {d: i for i, d in enumerate(ids)}
        if len(idx._pos) != n_docs:
            raise IndexFileError("duplicate document ids", os.path.join(data_dir, "ids.json"))
        idx._alive = np.ones(n_docs, dtype=bool)
        if isinstance(h.get("blocks"), dict) and idx._segments:
            idx._load_blocks(h["blocks"], data_dir, files, mmap, nnz)
        if isinstance(h.get("dense_terms"), dict) and idx._segments:
            idx._load_dense(h["dense_terms"], data_dir, files, mmap)
        return idx

    @staticmethod
    def _load_extra(names: Sequence[str], data_dir: str, files: Dict[str, Any], mmap: bool) -> Dict[str, np.ndarray]:
        """Arrays ``name.npy`` of a saved side structure, each listed in the header (IndexFileError otherwise)."""
        arrays: Dict[str, np.ndarray] = {}
        for name in names:
            fn = f"{name}.npy"
            fp = os.path.join(data_dir, fn)
            if fn not in files:
                raise IndexFileError("file is not listed in the header", fp)
            try:
                arrays[name] = np.load(fp, mmap_mode="r" if mmap else None, allow_pickle=False)
            except Exception as e:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError on bad files
                raise IndexFileError(f"not a readable .npy file ({type(e).__name__}: {e})", fp) from e
        return arrays

    def _load_dense(self, meta: Dict[str, Any], data_dir: str, files: Dict[str, Any], mmap: bool) -> None:
        """Attach saved dense rows (checked against the index; IndexFileError when inconsistent)."""
        arrays = self._load_extra(DenseTerms.ARRAYS, data_dir, files, mmap)
        try:
            dense = DenseTerms(self.vocab_size, int(meta["n_docs"]), arrays)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise IndexFileError(f"header's dense-row fields are invalid ({e})", data_dir) from e
        problem = dense.check(self.vocab_size, self._np_dtype)
        if problem is None and dense.n_docs != self._segment_docs(self._segments[0]):
            problem = "their document count differs from the postings'"  # rows too short would drop scores
        if problem:
            raise IndexFileError(f"dense rows: {problem}: the files are corrupt", data_dir)
        self._dense, self._dense_seg = dense, self._segments[0]

    def _load_blocks(self, meta: Dict[str, Any], data_dir: str, files: Dict[str, Any], mmap: bool, nnz: int) -> None:
        """Attach a saved block-max structure (checked against the postings; IndexFileError when inconsistent)."""
        loaded = self._load_extra([f"blocks_{name}" for name in BlockMax.ARRAYS], data_dir, files, mmap)
        arrays = {name: loaded[f"blocks_{name}"] for name in BlockMax.ARRAYS}
        try:
            bm = BlockMax(int(meta["block_size"]), int(meta["n_docs"]), float(meta["bscale"]), arrays)
        except (KeyError, TypeError, ValueError) as e:
            raise IndexFileError(f"header's block fields are invalid ({e})", data_dir) from e
        problem = bm.check(self.vocab_size, nnz) if bm.n_docs <= len(self._ids) else "more documents than the index"
        if problem:
            raise IndexFileError(f"block-max structure: {problem}: the files are corrupt", data_dir)
        self.block_size = bm.block_size
        self._blocks, self._blocks_seg = bm, self._segments[0]

    @classmethod
    def from_parquet(cls, path: "str | os.PathLike[str]", **kwargs: Any) -> "SparseIndex":
        """Build from a folder of Parquet vector shards (``splade-onnx encode`` output, or any Parquet files with
        ``id``/``indices``/``values`` columns); see :func:`splade_onnx.index.shards.from_parquet`."""
        from splade_onnx.index.shards import from_parquet

        return from_parquet(cls, path, **kwargs)

    @classmethod
    def merge(cls, indexes: Sequence["SparseIndex"], **kwargs: Any) -> "SparseIndex":
        """One index holding the documents of ``indexes`` (ids must not collide); see
        :func:`splade_onnx.index.shards.merge`."""
        from splade_onnx.index.shards import merge

        return merge(cls, indexes, **kwargs)

    @classmethod
    def merge_saved(
        cls, paths: Sequence["str | os.PathLike[str]"], out: "str | os.PathLike[str]", **kwargs: Any
    ) -> str:
        """Merge saved indexes into one saved at ``out``, streaming through memory-mapped files (collections
        larger than memory); see :func:`splade_onnx.index.shards.merge_saved`."""
        from splade_onnx.index.shards import merge_saved

        return merge_saved(cls, paths, out, **kwargs)


def _header_data(path: "str | os.PathLike[str]") -> Optional[str]:
    """The data folder the header at ``path`` names now (None when unreadable): changes at each committed save."""
    try:
        with open(os.path.join(os.fspath(path), HEADER_NAME), encoding="utf-8") as f:
            return str(json.load(f).get("data"))
    except Exception:  # noqa: BLE001
        return None


def _load_json(fp: str) -> Any:
    try:
        with open(fp, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IndexFileError(f"not valid JSON ({e}): truncated or corrupt", fp) from e


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def model_info(expander: Any) -> Dict[str, Any]:
    """Provenance of an Expander's artifact, stored in a saved index's header."""
    from splade_onnx.artifact.manifest import MANIFEST_NAME, sha256_file

    p = os.path.join(expander.path, MANIFEST_NAME)
    return {
        "path": os.path.abspath(expander.path),
        "manifest_sha256": sha256_file(p) if os.path.isfile(p) else None,
        "model_sha256": expander.manifest.model_sha256,
        "max_length": dict(expander.manifest.max_length),
    }
