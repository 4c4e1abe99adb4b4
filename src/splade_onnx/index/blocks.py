"""Block-max pruning for exact (and optionally approximate) top-k over term-major postings, in numpy.

The documents are cut into blocks of ``block_size`` consecutive ordinals. For every term and every block holding it
the structure stores the block id, the term's largest weight in the block (quantized *upwards* to uint8 with one
scale, so it stays an upper bound) and where the term's postings of that block start. A query's upper bound for a
block is ``sum_t q_t * blockmax[t, block]``; no document of the block can score more.

Search (``BlockMax.search``): compute every block's bound (dense uint8 rows for the terms present in most blocks,
a weighted ``bincount`` for the others), then score blocks exactly in rounds, heaviest bound first (a first round
of a few blocks, then rounds that grow 4x). After each round ``theta`` is the k-th best exact score seen; a block
whose bound is below ``theta`` cannot hold a top-k document (nor tie with one), so the search ends when every block
with ``bound >= theta`` has been scored. The result is the exhaustive search's, bit for bit: a block is scored by
gathering exactly the query terms' postings of its documents and summing ``q * w`` per document in the same term
order, in float64, as the exhaustive path does.

Approximate mode (one knob, ``accuracy`` in (0, 1]): a block is scored only while ``bound * accuracy >= theta``
(``accuracy = 1`` is exact). Lower values skip blocks whose bound is only slightly above the current threshold. When
even then more than a quarter of the blocks stay live after the first round, the query runs the exhaustive scan.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from splade_onnx.errors import IndexFileError

# the bounds are sums of rounded-up terms; this slack also covers float32/float64 rounding of the sums
_SLACK = 1.0 + 1e-5


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for every pair (vectorised)."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.cumsum(lens) - lens
    return np.repeat(starts - offs, lens) + np.arange(total, dtype=np.int64)


class BlockMax:
    """Block-max metadata of one term-major postings segment (documents ``0..n_docs-1``).

    Arrays (all plain numpy, saved and memory-mapped like the postings):
      ``tb_indptr`` int64[V+1]: term t's (block, max, start) entries are ``tb_indptr[t]:tb_indptr[t+1]``.
      ``tb_block`` int32[E]: block ids, ascending within a term.
      ``tb_max`` uint8[E]: ``ceil(max weight / bscale)``.
      ``tb_start`` int64[E+1]: posting offset of the entry's first posting; its last is ``tb_start[e+1] - 1``.
      ``dense`` uint8[D, n_blocks]: the rows of the D terms present in at least a quarter of the blocks
      (``dense_row`` int32[V] maps a term to its row, -1 when it has none).
    """

    ARRAYS = ("tb_indptr", "tb_block", "tb_max", "tb_start", "dense", "dense_row")

    def __init__(self, block_size: int, n_docs: int, bscale: float, arrays: Dict[str, np.ndarray]) -> None:
        self.block_size = int(block_size)
        self.shift = int(self.block_size).bit_length() - 1
        self.n_docs = int(n_docs)
        self.n_blocks = (self.n_docs + self.block_size - 1) // self.block_size
        self.bscale = float(bscale)
        self.tb_indptr: np.ndarray = arrays["tb_indptr"]
        self.tb_block: np.ndarray = arrays["tb_block"]
        self.tb_max: np.ndarray = arrays["tb_max"]
        self.tb_start: np.ndarray = arrays["tb_start"]
        self.dense: np.ndarray = arrays["dense"]
        self.dense_row: np.ndarray = arrays["dense_row"]
        self._entry_map: Optional[np.ndarray] = None  # built on the first search, not saved

    @property
    def arrays(self) -> Dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @property
    def nbytes(self) -> int:
        return int(sum(np.asarray(a).nbytes for a in self.arrays.values()))

    @property
    def meta(self) -> Dict[str, float]:
        return {"block_size": self.block_size, "n_docs": self.n_docs, "bscale": self.bscale}

    # -------------------------------------------------------------------------------------------- building
    @classmethod
    def build(
        cls,
        indptr: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        n_docs: int,
        block_size: int,
        dequant: float = 1.0,
        chunk: int = 1 << 24,
    ) -> "BlockMax":
        """Build from term-major postings (documents ascending within each term). ``dequant`` multiplies the
        stored weights (the uint8 scale; 1 otherwise). Works in chunks of about ``chunk`` postings."""
        if block_size < 1 or block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {block_size}")
        V = indptr.shape[0] - 1
        shift = block_size.bit_length() - 1
        n_blocks = (n_docs + block_size - 1) // block_size
        nnz = int(indptr[-1])
        gmax = 0.0
        for a in range(0, nnz, chunk):
            gmax = max(gmax, float(np.asarray(weights[a : a + chunk]).max()))
        gmax *= float(dequant)
        bscale = (gmax / 255.0 if gmax > 0 else 1.0) * (1 + 1e-6)
        counts = np.zeros(V, np.int64)
        blocks: List[np.ndarray] = []
        maxes: List[np.ndarray] = []
        starts: List[np.ndarray] = []
        t0 = 0
        while t0 < V:  # groups of whole terms, about `chunk` postings each
            t1 = int(np.searchsorted(indptr, indptr[t0] + chunk, side="right")) - 1
            t1 = min(V, max(t1, t0 + 1))
            a, b = int(indptr[t0]), int(indptr[t1])
            if b > a:
                blk = (np.asarray(docs[a:b]) >> shift).astype(np.int32)
                new = np.ones(b - a, bool)
                new[1:] = blk[1:] != blk[:-1]
                bounds = indptr[t0 + 1 : t1] - a  # term boundaries inside the chunk start a new entry
                new[bounds[(bounds > 0) & (bounds < b - a)]] = True
                st = np.flatnonzero(new)
                w = np.asarray(weights[a:b])
                mx = np.maximum.reduceat(w, st).astype(np.float64) * float(dequant)
                q = np.ceil(mx / bscale)
                blocks.append(blk[st])
                maxes.append(np.clip(q, 0, 255).astype(np.uint8))
                starts.append(st.astype(np.int64) + a)
                term_of = np.repeat(np.arange(t0, t1), np.diff(indptr[t0 : t1 + 1]))
                counts[t0:t1] = np.bincount(term_of[st] - t0, minlength=t1 - t0)
            t0 = t1
        tb_indptr = np.zeros(V + 1, np.int64)
        np.cumsum(counts, out=tb_indptr[1:])
        tb_block = np.concatenate(blocks) if blocks else np.zeros(0, np.int32)
        tb_max = np.concatenate(maxes) if maxes else np.zeros(0, np.uint8)
        tb_start = np.concatenate(starts + [np.array([nnz], np.int64)])
        dense_terms = np.flatnonzero(counts * 4 >= max(1, n_blocks)) if n_blocks >= 64 else np.zeros(0, np.int64)
        dense = np.zeros((dense_terms.size, n_blocks), np.uint8)
        dense_row = np.full(V, -1, np.int32)
        for r, t in enumerate(dense_terms.tolist()):
            lo, hi = int(tb_indptr[t]), int(tb_indptr[t + 1])
            dense[r, tb_block[lo:hi]] = tb_max[lo:hi]
            dense_row[t] = r
        return cls(
            block_size,
            n_docs,
            bscale,
            {
                "tb_indptr": tb_indptr,
                "tb_block": tb_block,
                "tb_max": tb_max,
                "tb_start": tb_start,
                "dense": dense,
                "dense_row": dense_row,
            },
        )

    def check(self, vocab_size: int, nnz: int) -> Optional[str]:
        """A reason the arrays are inconsistent with an index of ``vocab_size`` terms and ``nnz`` postings."""
        e = int(self.tb_block.shape[0])
        if self.tb_indptr.shape != (vocab_size + 1,) or int(self.tb_indptr[0]) != 0 or int(self.tb_indptr[-1]) != e:
            return "block pointers do not match the vocabulary"
        if self.tb_max.shape != (e,) or self.tb_start.shape != (e + 1,) or int(self.tb_start[-1]) != nnz:
            return "block entries do not match the postings"
        if self.dense_row.shape != (vocab_size,) or self.dense.ndim != 2 or self.dense.shape[1] != self.n_blocks:
            return "dense block rows do not match"
        if e and (int(np.min(self.tb_block)) < 0 or int(np.max(self.tb_block)) >= self.n_blocks):
            return "block ids out of range"
        return None

    # -------------------------------------------------------------------------------------------- search
    def bounds(self, qw: np.ndarray, found: "_QueryEntries") -> np.ndarray:
        """Upper bound of every block's score for the query (float64[n_blocks]); ``found``: its
        :meth:`query_entries`."""
        ub = np.zeros(self.n_blocks, np.float64)
        if found.dense_at.size:
            dr = found.dense_rows
            dq = qw[found.dense_at]
            if dr.size == 1:
                ub += self.dense[int(dr[0])] * float(dq[0])
            else:
                ub += dq.astype(np.float32) @ self.dense[dr].astype(np.float32)
        if found.entries.size:
            qrep = np.repeat(qw[found.sparse_at], found.counts)
            ub += np.bincount(found.blocks, weights=self.tb_max[found.entries] * qrep, minlength=self.n_blocks)
        ub *= self.bscale * _SLACK
        return ub

    def entry_map(self) -> np.ndarray:
        """[D, n_blocks]: for each term with a dense bound row, its entry index per block (-1: the term is not in the
        block). Lets a round find the frequent terms' postings of its blocks by a gather instead of a search per
        term. Derived from the saved arrays on first use: int32 (4 bytes per dense row and block), int64 past 2**31
        entries."""
        emap = self._entry_map
        if emap is None:
            dtype = np.int32 if int(self.tb_block.shape[0]) < 2**31 else np.int64
            emap = np.full(self.dense.shape, -1, dtype)
            for t in np.flatnonzero(np.asarray(self.dense_row) >= 0).tolist():
                lo, hi = int(self.tb_indptr[t]), int(self.tb_indptr[t + 1])
                emap[int(self.dense_row[t]), np.asarray(self.tb_block[lo:hi])] = np.arange(lo, hi, dtype=dtype)
            self._entry_map = emap
        return emap

    def query_entries(self, terms: np.ndarray) -> "_QueryEntries":
        """Per query, once: where to find each query term's (term, block) entries."""
        rows = np.asarray(self.dense_row)[terms]
        dense_at = np.flatnonzero(rows >= 0)
        sparse_at = np.flatnonzero(rows < 0)
        t = terms[sparse_at]
        lo, hi = self.tb_indptr[t], self.tb_indptr[t + 1]
        entries = ranges(lo, hi)
        blocks = np.asarray(self.tb_block[entries])
        keys = np.repeat(sparse_at.astype(np.int64), hi - lo) * self.n_blocks + blocks
        return _QueryEntries(dense_at, rows[dense_at], sparse_at, hi - lo, entries, blocks, keys)

    def score_blocks(
        self,
        sel: np.ndarray,
        terms: np.ndarray,
        qw: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        dequant: Optional[float],
        found: "_QueryEntries",
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Exact scores of every document of the blocks ``sel`` (sorted block ids): (ordinals, scores); ``found``:
        the query's :meth:`query_entries`."""
        b = self.block_size
        n_sel = sel.size
        # entry of every (query term, selected block), -1 where the term is not in the block; term-major, so the
        # postings are summed per document in query term order, as the exhaustive scan does
        entry = np.full((terms.size, n_sel), -1, np.int64)
        if found.dense_at.size:
            entry[found.dense_at] = self.entry_map()[found.dense_rows[:, None], sel[None, :]]
        if found.keys.size:
            probe = (found.sparse_at[:, None] * self.n_blocks + sel[None, :]).ravel()
            pos = np.minimum(np.searchsorted(found.keys, probe), found.keys.size - 1)
            hit = found.keys[pos] == probe
            entry[found.sparse_at] = np.where(hit, found.entries[pos], -1).reshape(found.sparse_at.size, n_sel)
        flat = entry.ravel()
        at = np.flatnonzero(flat >= 0)
        if at.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        e = flat[at]
        starts = np.asarray(self.tb_start[e])
        ends = np.asarray(self.tb_start[e + 1])
        lens = ends - starts
        idx = ranges(starts, ends)
        d = np.asarray(docs[idx]).astype(np.int64)
        w = np.asarray(weights[idx]).astype(np.float64)
        if dequant is not None:
            w *= dequant
        w *= np.repeat(qw[at // n_sel].astype(np.float64), lens)
        slot = np.repeat(at % n_sel, lens)
        if not np.array_equal(d >> self.shift, sel[slot]):  # each posting must lie in the block it is filed under
            raise IndexFileError("postings hold a document ordinal outside its block: the index is corrupt")
        label = (slot - sel[slot]) * b + d  # slot * b + (d - sel[slot] * b)
        sc = np.bincount(label, weights=w, minlength=n_sel * b)
        nz = np.flatnonzero(sc > 0)
        ords = sel[nz // b].astype(np.int64) * b + nz % b
        return ords, sc[nz]

    def search(
        self,
        terms: np.ndarray,
        qw: np.ndarray,
        k: int,
        docs: np.ndarray,
        weights: np.ndarray,
        dequant: Optional[float],
        alive: Optional[np.ndarray],
        seed: Tuple[np.ndarray, np.ndarray],
        accuracy: float = 1.0,
        first: int = 16,
        grow: int = 4,
        give_up: float = 0.25,
    ) -> Tuple[Optional[np.ndarray], np.ndarray, Dict[str, int]]:
        """Top-k candidates (ordinals, scores; unordered, a superset of the top k with ties kept) over this
        structure's documents, merged with ``seed`` (candidates scored elsewhere, e.g. newer segments).

        The search gives up (returns ``None`` ordinals) when, after the first round, more than ``give_up`` of the
        blocks can still reach the threshold (times ``accuracy``): the bounds are too loose for this query
        (documents in an order where blocks are not coherent) and the caller's exhaustive scan is cheaper. The
        approximate mode gives up the same way, so it is never much slower than the exact search (and then exact)."""
        found = self.query_entries(terms)
        ub = self.bounds(qw, found)
        cand = np.flatnonzero(ub > 0)
        ords, scores = seed
        theta = _kth(scores, k)
        done = 0
        rounds = 0
        batch = first
        while cand.size:
            live = cand[ub[cand] * accuracy >= theta] if theta > 0 else cand
            if live.size == 0:
                break
            if live.size > batch:
                part = np.argpartition(-ub[live], batch - 1)
                sel, rest = live[part[:batch]], live[part[batch:]]
            else:
                sel, rest = live, live[:0]
            sel = np.sort(sel)
            o, s = self.score_blocks(sel, terms, qw, docs, weights, dequant, found)
            if alive is not None and o.size:
                keep = alive[o]
                o, s = o[keep], s[keep]
            ords = np.concatenate([ords, o])
            scores = np.concatenate([scores, s])
            if scores.size > 4 * k:  # keep the candidates that can still be in the top k (ties included)
                th = _kth(scores, k)
                m = scores >= th
                ords, scores = ords[m], scores[m]
            theta = _kth(scores, k)
            done += sel.size
            rounds += 1
            cand = rest
            batch *= grow
            if rounds == 1 and give_up < 1 and theta > 0:
                if np.count_nonzero(ub[cand] * accuracy >= theta) > give_up * self.n_blocks:
                    return (
                        None,
                        scores,
                        {"blocks": int(self.n_blocks), "blocks_scored": done, "rounds": rounds, "gave_up": 1},
                    )
        return ords, scores, {"blocks": int(self.n_blocks), "blocks_scored": done, "rounds": rounds, "gave_up": 0}


class _QueryEntries(NamedTuple):
    """A query's terms split by how their block entries are found: ``dense_at`` (positions in the query) through
    the dense rows ``dense_rows`` (bounds) and the entry map (scoring); ``sparse_at`` (``counts`` entries each)
    through their listed ``entries``, with their ``blocks`` and the search keys ``position * n_blocks + block``
    (ascending)."""

    dense_at: np.ndarray
    dense_rows: np.ndarray
    sparse_at: np.ndarray
    counts: np.ndarray
    entries: np.ndarray
    blocks: np.ndarray
    keys: np.ndarray


def _kth(scores: np.ndarray, k: int) -> float:
    """The k-th largest score (0 when there are fewer than k)."""
    if scores.size < k:
        return 0.0
    return float(np.partition(scores, scores.size - k)[scores.size - k])
