"""Hybrid retrieval: fuse a SparseIndex ranking with BM25 (``bm25s``, the ``[hybrid]`` extra) or any ranked list a
user brings (a dense retriever's), by reciprocal rank fusion or by a normalised convex combination.

    from splade_onnx.index.hybrid import BM25, fuse_rrf, fuse_convex
    bm25 = BM25.from_texts(texts, ids)                                # English stemming by default
    hits = fuse_convex([index.search(qvec, 100), bm25.search(qtext, 100)], weights=[0.5, 0.5], k=10)

Both fusions take ranked lists of ``(doc_id, score)`` (best first) and return one, best first, ties by first
appearance. A document missing from a list gets nothing from it (RRF) or that list's minimum normalised score, 0
(convex combination with min-max normalisation).
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from splade_onnx.errors import MissingExtraError

Hit = Tuple[Any, float]


def _check(rankings: Sequence[Sequence[Hit]], weights: Optional[Sequence[float]]) -> List[float]:
    if not rankings:
        raise ValueError("give at least one ranking")
    w = [1.0] * len(rankings) if weights is None else [float(x) for x in weights]
    if len(w) != len(rankings):
        raise ValueError(f"{len(w)} weights for {len(rankings)} rankings")
    if any(not np.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {w}")
    return w


def _top(scores: Dict[Hashable, float], first: Dict[Hashable, int], k: Optional[int]) -> List[Hit]:
    order = sorted(scores, key=lambda d: (-scores[d], first[d]))
    return [(d, float(scores[d])) for d in (order if k is None else order[:k])]


def fuse_rrf(
    rankings: Sequence[Sequence[Hit]],
    k: Optional[int] = 10,
    *,
    weights: Optional[Sequence[float]] = None,
    c: float = 60.0,
) -> List[Hit]:
    """Reciprocal rank fusion: ``score(d) = sum_i weight_i / (c + rank_i(d))`` (ranks from 1; Cormack et al. 2009,
    ``c = 60``). Only ranks matter, so lists of any score scale fuse."""
    w = _check(rankings, weights)
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c}")
    scores: Dict[Hashable, float] = {}
    first: Dict[Hashable, int] = {}
    n = 0
    for wi, hits in zip(w, rankings, strict=False):
        for r, (d, _) in enumerate(hits, 1):
            scores[d] = scores.get(d, 0.0) + wi / (c + r)
            if d not in first:
                first[d] = n
                n += 1
    return _top(scores, first, k)


def normalise(hits: Sequence[Hit], method: str = "minmax") -> List[Hit]:
    """Scores of one list mapped to [0, 1] (``minmax``; all equal -> 1) or to z-scores (``zscore``)."""
    if not hits:
        return []
    s = np.array([float(x) for _, x in hits], dtype=np.float64)
    if method == "minmax":
        lo, hi = float(s.min()), float(s.max())
        z = (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)
    elif method == "zscore":
        sd = float(s.std())
        z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    else:
        raise ValueError(f"method must be 'minmax' or 'zscore', got {method!r}")
    return [(d, float(v)) for (d, _), v in zip(hits, z, strict=False)]


def fuse_convex(
    rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: Optional[int] = 10, *, method: str = "minmax"
) -> List[Hit]:
    """Normalised convex combination: ``score(d) = sum_i weight_i * norm_i(d)`` with each list's scores normalised
    (``method``: min-max over the list, or z-score); weights are divided by their sum."""
    w = _check(rankings, weights)
    tot = sum(w)
    scores: Dict[Hashable, float] = {}
    first: Dict[Hashable, int] = {}
    n = 0
    floors = []
    normed = [normalise(h, method) for h in rankings]
    for h in normed:
        floors.append(min((x for _, x in h), default=0.0))
    for d in (d for h in normed for d, _ in h):
        if d not in first:
            first[d] = n
            n += 1
    for wi, h, fl in zip(w, normed, floors, strict=False):
        got = dict(h)
        for d in first:  # a document absent from a list gets that list's lowest normalised score
            scores[d] = scores.get(d, 0.0) + (wi / tot) * got.get(d, fl)
    return _top(scores, first, k)


class BM25:
    """BM25 over texts with ``bm25s`` (numpy sparse; the ``[hybrid]`` extra), English Snowball stemming (PyStemmer)
    and bm25s' English stop words by default. ``search`` returns ``[(doc_id, score), ...]`` best first."""

    def __init__(self, retriever: Any, ids: Sequence[Any], stemmer: Any, stopwords: Any) -> None:
        self._r, self.ids, self._stemmer, self._stop = retriever, list(ids), stemmer, stopwords

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        ids: Optional[Sequence[Any]] = None,
        *,
        language: str = "english",
        stem: bool = True,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
    ) -> "BM25":
        """Index ``texts`` (ids default to ``0..n-1``)."""
        bm25s = _bm25s()
        stemmer = None
        if stem:
            try:
                import Stemmer
            except ImportError as e:
                raise MissingExtraError("hybrid", "BM25 stemming (PyStemmer)", e) from e
            stemmer = Stemmer.Stemmer(language)
        stop = "en" if language == "english" else None
        ids = list(range(len(texts))) if ids is None else list(ids)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        tokens = bm25s.tokenize(list(texts), stopwords=stop, stemmer=stemmer, show_progress=False)
        r = bm25s.BM25(k1=k1, b=b, method=method)
        r.index(tokens, show_progress=False)
        return cls(r, ids, stemmer, stop)

    def search(self, queries: Any, k: int = 10) -> Any:
        """Top ``k`` for one query text (a list of hits) or a list of texts (a list of lists)."""
        bm25s = _bm25s()
        single = isinstance(queries, str)
        qs = [queries] if single else list(queries)
        n = len(self.ids)
        out: List[List[Hit]] = []
        for q in qs:
            tok = bm25s.tokenize(
                [q], stopwords=self._stop, stemmer=self._stemmer, show_progress=False, return_ids=False
            )
            if not tok or not tok[0]:
                out.append([])
                continue
            docs, scores = self._r.retrieve([tok[0]], k=min(k, n), show_progress=False, n_threads=1)
            out.append([(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=False) if s > 0])
        return out[0] if single else out


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError as e:
        raise MissingExtraError("hybrid", "BM25 (bm25s)", e) from e
    return bm25s


FUSIONS = ("convex-minmax", "convex-zscore", "rrf")
DEFAULT_FUSION = ("convex-zscore", 0.4)  # chosen on SciFact's train split (splade-tiny + stemmed BM25)


def fuse(method: str, sparse: Sequence[Hit], other: Sequence[Hit], weight: float, k: Optional[int] = 10) -> List[Hit]:
    """Fuse two rankings: ``method`` is one of :data:`FUSIONS`; ``weight`` is the sparse ranking's share (the other
    list gets ``1 - weight``)."""
    if not 0 <= weight <= 1:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if method == "rrf":
        return fuse_rrf([sparse, other], k, weights=[weight, 1 - weight])
    if method in ("convex-minmax", "convex-zscore"):
        return fuse_convex([sparse, other], [weight, 1 - weight], k, method=method.split("-")[1])
    raise ValueError(f"method must be one of {FUSIONS}, got {method!r}")
