"""Dense rows for the most frequent terms of a postings segment: the same weights, laid out per document.

A term held by at least half of the documents costs more as postings (a 4-byte ordinal plus the weight, per
document holding it) than as one weight per document, and scoring it through postings is a gather and a scatter
per posting (``acc[docs] += q * w``) where a dense row is one contiguous ``acc += q * row``. So the exhaustive scan
reads these terms from their dense rows: the same stored weights (a document without the term holds 0), added in
the same term order, so the scores are bit-for-bit those of the postings path. The postings stay as they are (for
``explain``, block-max pruning, ``to_csr`` and saving); the rows add at most the bytes of those terms' postings.

Measured on the 1M-document benchmark collection (``benchmarks/search_bench.py``): 24 terms reach half of the
documents; they hold 6% of the postings but make up much of a query's scan.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

# terms held by at least this fraction of a segment's documents get a dense row (at 0.5 a float32 row is no larger
# than the term's postings: 4 bytes per document against 8 per posting)
DENSE_MIN_DF = 0.5
# segments smaller than this keep postings only (the rows would save little there)
DENSE_MIN_DOCS = 50_000


class DenseTerms:
    """Dense weight rows of the frequent terms of one term-major postings segment (documents ``0..n_docs-1``).

    Arrays (plain numpy, saved and memory-mapped like the postings):
      ``dense_terms`` int32[D]: the terms with a row, ascending.
      ``dense_rows`` [D, n_docs], the postings' weight dtype: the stored weight of document ``j`` for term
      ``dense_terms[r]`` at ``[r, j]`` (0 where the document lacks the term).
    """

    ARRAYS = ("dense_terms", "dense_rows")

    def __init__(self, vocab_size: int, n_docs: int, arrays: Dict[str, np.ndarray]) -> None:
        self.n_docs = int(n_docs)
        self.dense_terms: np.ndarray = arrays["dense_terms"]
        self.dense_rows: np.ndarray = arrays["dense_rows"]
        self.row_of = np.full(int(vocab_size), -1, np.int64)
        self.row_of[np.asarray(self.dense_terms, dtype=np.int64)] = np.arange(self.dense_terms.shape[0])

    @property
    def arrays(self) -> Dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @property
    def nbytes(self) -> int:
        return int(self.dense_terms.nbytes + self.dense_rows.nbytes)

    @property
    def meta(self) -> Dict[str, int]:
        return {"n_docs": self.n_docs}

    @classmethod
    def build(
        cls,
        indptr: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        n_docs: int,
        min_df: float = DENSE_MIN_DF,
    ) -> "DenseTerms":
        """Rows for the terms of the segment held by at least ``min_df`` of its ``n_docs`` documents."""
        vocab_size = indptr.shape[0] - 1
        df = np.diff(np.asarray(indptr))
        terms = np.flatnonzero(df >= max(1.0, min_df * n_docs)).astype(np.int32)
        rows = np.zeros((terms.size, n_docs), dtype=np.asarray(weights[:0]).dtype)
        for r, t in enumerate(terms.tolist()):
            s, e = int(indptr[t]), int(indptr[t + 1])
            rows[r, np.asarray(docs[s:e])] = np.asarray(weights[s:e])
        return cls(vocab_size, n_docs, {"dense_terms": terms, "dense_rows": rows})

    def check(self, vocab_size: int, weights_dtype: np.dtype) -> Optional[str]:
        """A reason the arrays do not fit an index of ``vocab_size`` terms and weights of ``weights_dtype``."""
        t, rows = self.dense_terms, self.dense_rows
        if t.ndim != 1 or rows.ndim != 2 or rows.shape != (t.shape[0], self.n_docs):
            return "dense rows do not match their terms"
        if rows.dtype != weights_dtype:
            return f"dense rows hold {rows.dtype}, the postings {weights_dtype}"
        if t.size and (int(t.min()) < 0 or int(t.max()) >= vocab_size or np.any(np.diff(t) <= 0)):
            return "dense terms out of range or not ascending"
        return None
