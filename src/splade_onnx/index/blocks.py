"""Block-max pruning for exact (and optionally approximate) top-k over term-major postings, in numpy.

The documents are cut into blocks of ``block_size`` consecutive ordinals. For every term and every block holding it
the structure stores the block id, the term's largest weight in the block (quantized *upwards* to uint8 with one
scale, so it stays an upper bound) and where the term's postings of that block start. A query's upper bound for a
block is ``sum_t q_t * blockmax[t, block]``; no document of the block can score more. Terms present in at least a
quarter of the blocks also have a dense row of block maxima. Superblocks of ``SUPER`` consecutive blocks carry the
largest of their blocks' maxima per term (derived on first use), so a superblock's bound covers its blocks.

Search (``BlockMax.search``), two ways with the same results, chosen by the number of blocks:

- by blocks (below ``SUPERBLOCKS_MIN_BLOCKS``): compute every block's bound (a pass per dense row, one weighted
  ``bincount`` for the other terms), then score blocks exactly in rounds, heaviest bound first (``first`` blocks,
  then rounds that grow 4x);
- by superblocks (from ``SUPERBLOCKS_MIN_BLOCKS`` on, where bounding every block costs more than it saves): compute
  every superblock's bound, then take superblocks in rounds, heaviest bound first; a round computes the bounds of
  the blocks of its superblocks only and scores those that can still reach the threshold.

A long query's large round is screened first: its heaviest terms' postings in the round's blocks are scored, and a
block is dropped when its best partial score plus the rest of its bound (the bound less those terms' block maxima)
is below ``theta``; the blocks kept are scored in full, so the scores do not change.

After each round ``theta`` is the k-th best exact score seen; a block or superblock whose bound is below ``theta``
cannot hold a top-k document (nor tie with one), so the search ends when none left reaches it. The result is the
exhaustive search's, bit for bit: a block is scored by gathering exactly the query terms' postings of its
documents and summing ``q * w`` per document in the same term order, in float64, as the exhaustive path does.

Approximate mode (one knob, ``accuracy`` in (0, 1]): a superblock or block is used only while ``bound * accuracy
>= theta`` (``accuracy = 1`` is exact). Lower values skip those whose bound is only slightly above the current
threshold. When after the second round (by superblocks: estimated from a sample) more than a quarter of
the blocks could still reach the threshold, the query runs the exhaustive scan.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from splade_onnx.errors import IndexFileError

# the bounds are sums of rounded-up terms; this slack also covers float32/float64 rounding of the sums
_SLACK = 1.0 + 1e-5
SUPER = 4  # blocks per superblock: 2, 4 or 8 (see BlockMax.superblocks)
SUPERBLOCKS_MIN_BLOCKS = 1 << 18  # from this many blocks on, search by superblocks (see BlockMax.search)
# a round of at least SCREEN_MIN_BLOCKS blocks of a query of at least SCREEN_MIN_TERMS terms is screened first by its
# max(SCREEN_HEAVY_TERMS, terms // SCREEN_HEAVY_DIV) heaviest terms (see BlockMax.score_blocks)
SCREEN_HEAVY_TERMS = 12
SCREEN_MIN_TERMS = 24
SCREEN_MIN_BLOCKS = 16
SCREEN_HEAVY_DIV = 4
# finding a round's entries: a binary search per (term, block) probe costs about this many passes over one entry
PROBE_COST = 8


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, e)`` for every pair (vectorised)."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.cumsum(lens) - lens
    return np.repeat(starts - offs, lens) + np.arange(total, dtype=np.int64)


def _word() -> "np.dtype[Any]":
    """The unsigned integer holding one superblock's ``SUPER`` uint8 block maxima (2, 4 or 8 bytes)."""
    return np.dtype(f"=u{SUPER}")


def _row_max(rows: np.ndarray) -> np.ndarray:
    """The largest value of each row of a 2-d array of a few columns, column by column (several times faster than
    ``max(axis=1)`` over short rows)."""
    out = rows[:, 0].copy()
    for j in range(1, rows.shape[1]):
        np.maximum(out, rows[:, j], out=out)
    return out


def cells_of(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``matrix[rows[:, None], cols[None, :]]`` for a C-contiguous 2-d array, as one flat ``take`` (2-3x faster than
    the 2-d fancy index when the cells are many and scattered)."""
    flat = rows.astype(np.int64)[:, None] * matrix.shape[1] + cols[None, :]
    return np.take(matrix.reshape(-1), flat.reshape(-1)).reshape(rows.size, cols.size)


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
        self._super: Optional[_Superblocks] = None  # likewise

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
    def superblocks(self) -> "_Superblocks":
        """The superblock level (``SUPER`` consecutive blocks): per term, its largest block maximum in each
        superblock. Dense rows: ``dense`` [D, n_super], and the block rows padded to whole superblocks,
        ``dense_blocks`` [D, n_super] (a superblock's ``SUPER`` uint8 block maxima as one word, :func:`_word`).
        Other terms: entries ``indptr[t]:indptr[t+1]`` with ascending superblock ids ``ids``, maxima ``maxes``,
        ``start``, the index of the term's first block entry in that superblock, and ``words``, the term's block
        maxima there as one word (0 where it is absent), so that bounding a superblock's blocks reads one word per
        term, not its block entries.
        Derived from the saved arrays on first use, in chunks of terms (at 1M documents about a third as many
        entries as the blocks have)."""
        sup = self._super
        if sup is None:
            n_super = (self.n_blocks + SUPER - 1) // SUPER
            # the dense rows again, padded to whole superblocks, so that a round gathers a superblock's blocks at once
            padded = np.zeros((self.dense.shape[0], n_super, SUPER), np.uint8)
            padded.reshape(self.dense.shape[0], n_super * SUPER)[:, : self.n_blocks] = self.dense
            dense = _row_max(padded.reshape(-1, SUPER)).reshape(self.dense.shape[0], n_super)
            blocks = padded.view(_word()).reshape(self.dense.shape[0], n_super)  # a superblock's maxima
            V = self.tb_indptr.shape[0] - 1
            sparse_terms = np.asarray(self.dense_row) < 0
            counts = np.zeros(V, np.int64)
            ids: List[np.ndarray] = []
            maxes: List[np.ndarray] = []
            starts: List[np.ndarray] = []
            words: List[np.ndarray] = []
            idx_type = np.int32 if int(self.tb_block.shape[0]) < 2**31 else np.int64
            shift = SUPER.bit_length() - 1
            t0 = 0
            while t0 < V:  # groups of whole terms, about 2**24 entries each
                t1 = int(np.searchsorted(self.tb_indptr, self.tb_indptr[t0] + (1 << 24), side="right")) - 1
                t1 = min(V, max(t1, t0 + 1))
                a, b = int(self.tb_indptr[t0]), int(self.tb_indptr[t1])
                if b > a:
                    sb = np.asarray(self.tb_block[a:b]) >> shift
                    new = np.ones(b - a, bool)  # runs of one term's entries in one superblock
                    new[1:] = sb[1:] != sb[:-1]
                    term_bounds = self.tb_indptr[t0 + 1 : t1] - a
                    new[term_bounds[(term_bounds > 0) & (term_bounds < b - a)]] = True
                    st = np.flatnonzero(new)
                    term_of = np.repeat(np.arange(t0, t1), np.diff(self.tb_indptr[t0 : t1 + 1]))[st]
                    keep = sparse_terms[term_of]
                    ids.append(sb[st[keep]].astype(np.int32))
                    starts.append((st[keep] + a).astype(idx_type))
                    # each run's block maxima, by block in the superblock (0 where the term is absent)
                    flat = np.zeros(st.size * SUPER, np.uint8)
                    slot = (np.cumsum(new, dtype=np.int32) - 1) * SUPER  # a chunk holds about 2**24 entries
                    slot += np.asarray(self.tb_block[a:b]) & (SUPER - 1)
                    flat[slot] = np.asarray(self.tb_max[a:b])
                    per = flat.reshape(st.size, SUPER)
                    maxes.append(_row_max(per)[keep])
                    words.append(flat.view(_word())[keep])
                    counts[t0:t1] = np.bincount(term_of[keep] - t0, minlength=t1 - t0)
                t0 = t1
            indptr = np.zeros(V + 1, np.int64)
            np.cumsum(counts, out=indptr[1:])
            sup = _Superblocks(
                n_super,
                dense,
                blocks,
                indptr,
                np.concatenate(ids) if ids else np.zeros(0, np.int32),
                np.concatenate(maxes) if maxes else np.zeros(0, np.uint8),
                np.concatenate(starts + [np.full(1, self.tb_block.shape[0], idx_type)]),
                np.concatenate(words) if words else np.zeros(0, _word()),
            )
            self._super = sup
        return sup

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

    def superblock_entries(self, terms: np.ndarray, qw: np.ndarray) -> "_SuperblockEntries":
        """Per query, for :meth:`search_superblocks`: where each term's entries are; every superblock's bound."""
        sup = self.superblocks()
        rows = np.asarray(self.dense_row)[terms]
        dense_at = np.flatnonzero(rows >= 0)
        sparse_at = np.flatnonzero(rows < 0)
        t = terms[sparse_at]
        slo, shi = sup.indptr[t], sup.indptr[t + 1]
        counts = shi - slo
        spans = list(zip(slo.tolist(), shi.tolist()))  # copied term by term: contiguous slices
        if spans:
            sb_of = np.concatenate([sup.ids[a:b] for a, b in spans])
            maxes = np.concatenate([sup.maxes[a:b] for a, b in spans])
        else:
            sb_of, maxes = np.zeros(0, np.int32), np.zeros(0, np.uint8)
        rank = np.repeat(np.arange(sparse_at.size, dtype=np.int64), counts)
        keys = rank * sup.n_super + sb_of  # ascending
        # superblock bounds: a pass per dense row, one weighted count for the other terms' entries
        slack = self._slack(qw)
        sub = np.zeros(sup.n_super, np.float32)
        if dense_at.size:
            row = np.empty(sup.n_super, np.float32)
            for r, q in zip(rows[dense_at].tolist(), qw[dense_at].tolist(), strict=True):
                np.multiply(sup.dense[r], np.float32(q), out=row)
                sub += row
        if sb_of.size:
            w = maxes * np.repeat(qw[sparse_at].astype(np.float32), counts)
            sub += np.bincount(sb_of, weights=w, minlength=sup.n_super).astype(np.float32)
        sub *= slack
        return _SuperblockEntries(
            dense_at,
            rows[dense_at],
            sparse_at,
            self.tb_indptr[t + 1],
            slo - (np.cumsum(counts) - counts),
            rank,
            sb_of,
            keys,
            np.full(sup.n_super, -1, np.int64),
            sub,
            slack,
        )

    def expand(
        self, take: np.ndarray, qw: np.ndarray, found: "_SuperblockEntries"
    ) -> Tuple[np.ndarray, np.ndarray, Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The blocks of the superblocks ``take`` (ascending): (block ids, their bounds as float32, and where the
        terms without a dense row are in those superblocks, as (term rank, place in ``take``, superblock entry)
        triples for :meth:`kept_entries`)."""
        sup = self.superblocks()
        n_take = take.size
        blk = (take[:, None] * SUPER + np.arange(SUPER)).ravel()  # past n_blocks in a partial last superblock: ub 0
        ub = np.zeros(blk.size, np.float32)
        if found.dense_at.size:
            rows = cells_of(sup.dense_blocks, found.dense_rows, take).view(np.uint8)
            part = np.empty(blk.size, np.float32)
            for row, q in zip(rows, qw[found.dense_at].tolist(), strict=True):
                np.multiply(row, np.float32(q), out=part)
                ub += part
        none = np.zeros(0, np.int64)
        cells = (none, none, none)
        if found.sb_of.size:
            m = found.sparse_at.size
            if m * n_take * PROBE_COST < found.sb_of.size:  # a small round: search its superblocks in the query's keys
                probe = (np.arange(m, dtype=np.int64)[:, None] * sup.n_super + take[None, :]).ravel()
                pos = np.minimum(np.searchsorted(found.keys, probe), found.keys.size - 1)
                at = np.flatnonzero(found.keys[pos] == probe)
                hit, ti = pos[at], at % n_take
            else:  # a large one: one pass over the query's superblock entries
                found.slot[take] = np.arange(n_take)
                ti = found.slot[found.sb_of]  # each entry's place in take, or -1
                found.slot[take] = -1
                hit = np.flatnonzero(ti >= 0)
                ti = ti[hit]
            if hit.size:
                r = found.rank[hit]
                e = hit + found.first[r]
                # the block maxima of each (term, superblock), times the term's weight, onto the superblock's blocks
                per = np.asarray(sup.words[e]).view(np.uint8).reshape(hit.size, SUPER)
                w = per * qw[found.sparse_at].astype(np.float32)[r][:, None]
                local = (ti[:, None] * SUPER + np.arange(SUPER)).reshape(-1)
                ub += np.bincount(local, weights=w.reshape(-1), minlength=blk.size).astype(np.float32)
                cells = (r, ti, e)
        ub *= found.slack
        return blk, ub, cells

    def kept_entries(
        self,
        found: "_SuperblockEntries",
        keep: np.ndarray,
        n_blocks: int,
        cells: Tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """[terms without a dense row, blocks ``keep`` of an :meth:`expand`'s ``n_blocks``]: each one's entry in each
        block, -1 where it has none, from that expand's (term rank, superblock place, superblock entry) triples
        ``cells``: the block entries are looked up only in the superblocks that kept a block."""
        r, ti, e = cells
        out = np.full((found.sparse_at.size, keep.size), -1, np.int64)
        if not r.size:
            return out
        place = np.full(n_blocks, -1, np.int64)
        place[keep] = np.arange(keep.size)
        used = np.zeros(n_blocks // SUPER, bool)
        used[keep // SUPER] = True
        ok = np.flatnonzero(used[ti])
        r, ti, e = r[ok], ti[ok], e[ok]
        sup = self.superblocks()
        st = np.asarray(sup.start[e]).astype(np.int64)
        en = np.minimum(np.asarray(sup.start[e + 1]).astype(np.int64), found.hi[r])
        n = en - st
        idx = ranges(st, en)  # the block entries of (term, superblock)
        local = np.repeat(ti * SUPER, n) + (np.asarray(self.tb_block[idx]) & (SUPER - 1))
        p = place[local]
        hit = np.flatnonzero(p >= 0)
        out[np.repeat(r, n)[hit], p[hit]] = idx[hit]
        return out

    def score_blocks(
        self,
        sel: np.ndarray,
        sparse_entry: np.ndarray,
        terms: np.ndarray,
        qw: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        dequant: Optional[float],
        found: "Union[_SuperblockEntries, _BlockEntries]",
        theta: float = 0.0,
        bounds: Optional[np.ndarray] = None,
        accuracy: float = 1.0,
    ) -> Tuple[np.ndarray, np.ndarray, int]:
        """Exact scores of the documents of the blocks ``sel`` (ascending block ids): (ordinals, scores, blocks
        scored); ``sparse_entry``: the entries of the terms without a dense row in those blocks (-1: none), per term.

        With a threshold ``theta`` > 0 and the blocks' ``bounds``, a long query's large round is screened first
        (:meth:`_screen`): the blocks that cannot reach ``theta`` are dropped without reading their other postings;
        the documents of every block scored are scored in full, so the scores do not change."""
        # entry of every (query term, selected block), -1 where the term is not in the block; term-major, so the
        # postings are summed per document in query term order, as the exhaustive scan does
        entry = np.full((terms.size, sel.size), -1, np.int64)
        if found.dense_at.size:
            entry[found.dense_at] = cells_of(self.entry_map(), found.dense_rows, sel)
        entry[found.sparse_at] = sparse_entry
        if theta > 0 and bounds is not None and terms.size >= SCREEN_MIN_TERMS and sel.size >= SCREEN_MIN_BLOCKS:
            keep = self._screen(sel, entry, qw, docs, weights, dequant, theta, bounds, accuracy)
            sel, entry = sel[keep], entry[:, keep]
        sc = self._sum_postings(sel, entry, qw, docs, weights, dequant)
        nz = np.flatnonzero(sc > 0)
        b = self.block_size
        return sel[nz // b].astype(np.int64) * b + nz % b, sc[nz], int(sel.size)

    def _screen(
        self,
        sel: np.ndarray,
        entry: np.ndarray,
        qw: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        dequant: Optional[float],
        theta: float,
        bounds: np.ndarray,
        accuracy: float,
    ) -> np.ndarray:
        """Which of the blocks ``sel`` can still reach ``theta``: score only the postings of the query's heaviest
        terms (``SCREEN_HEAVY_TERMS``, or a ``SCREEN_HEAVY_DIV``-th of its terms if more); a document's score is at
        most its partial score plus the block's bound less what those terms contribute to it (their block maxima,
        summed in float64 and rounded down)."""
        h = min(qw.size, max(SCREEN_HEAVY_TERMS, qw.size // SCREEN_HEAVY_DIV))
        heavy = np.sort(np.argpartition(-qw, h - 1)[:h])
        eh = entry[heavy]
        part = self._sum_postings(sel, eh, qw[heavy], docs, weights, dequant)
        best = part.reshape(sel.size, self.block_size).max(axis=1)
        mx = np.where(eh >= 0, np.asarray(self.tb_max[np.maximum(eh, 0)]), 0).astype(np.float64)
        heavy_max = (qw[heavy].astype(np.float64) @ mx) * (self.bscale * (1 - 1e-9))
        rest = np.maximum(bounds.astype(np.float64) - heavy_max, 0.0)
        return np.flatnonzero((best * (1 + 1e-9) + rest) * accuracy >= theta)

    def _sum_postings(
        self,
        sel: np.ndarray,
        entry: np.ndarray,
        qw: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        dequant: Optional[float],
    ) -> np.ndarray:
        """Per document of the blocks ``sel`` (block-major, ``block_size`` each), the sum of ``q * w`` over the
        postings of the entries ``entry`` [terms, blocks] (-1: none), in float64, term by term in row order."""
        b = self.block_size
        n_sel = sel.size
        flat = entry.ravel()
        at = np.flatnonzero(flat >= 0)
        if at.size == 0:
            return np.zeros(n_sel * b, np.float64)
        e = flat[at]
        starts = np.asarray(self.tb_start[e])
        lens = np.asarray(self.tb_start[e + 1]) - starts
        slot = at % n_sel
        # a term's ordinals ascend, so an entry's first and last postings bound all of its postings: each must lie
        # in the block the entry is filed under (checked per entry, not per posting)
        first = np.asarray(docs[starts]) >> self.shift
        last = np.asarray(docs[starts + np.maximum(lens, 1) - 1]) >> self.shift
        if int(lens.min()) < 1 or np.any(first != sel[slot]) or np.any(last != sel[slot]):
            raise IndexFileError("postings hold a document ordinal outside its block: the index is corrupt")
        idx = ranges(starts, starts + lens)
        q = np.repeat(qw[at // n_sel].astype(np.float64), lens)
        if dequant is not None:  # (w * dequant) * q, as the exhaustive scan computes it
            w = np.multiply(np.asarray(weights[idx]), dequant, dtype=np.float64)
            w *= q
        else:
            w = np.multiply(np.asarray(weights[idx]), q, dtype=np.float64)
        # each posting's place among the selected blocks' documents: slot * b + ordinal - block start
        local = np.asarray(docs[idx]) + np.repeat(slot * b - (sel[slot] << self.shift), lens)
        return np.bincount(local, weights=w, minlength=n_sel * b)

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
        give_up: float = 0.25,
    ) -> Tuple[Optional[np.ndarray], np.ndarray, Dict[str, int]]:
        """Top-k candidates (ordinals, scores; unordered, a superset of the top k with ties kept) over this
        structure's documents, merged with ``seed`` (candidates scored elsewhere, e.g. newer segments); ``None``
        ordinals when the bounds cannot prune this query (the caller's exhaustive scan is cheaper then).

        From ``SUPERBLOCKS_MIN_BLOCKS`` blocks on by superblocks (:meth:`search_superblocks`), below by the bounds of
        every block (:meth:`search_blocks`): same results; the first is faster when bounding every block costs
        more than its rounds do (measured: slower at 62,500 and 187,500 blocks, faster at 550,000)."""
        args = (terms, qw, k, docs, weights, dequant, alive, seed, accuracy)
        if self.n_blocks >= SUPERBLOCKS_MIN_BLOCKS:
            return self.search_superblocks(*args, give_up=give_up)
        return self.search_blocks(*args, give_up=give_up)

    def search_blocks(
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
        """:meth:`search` by the bounds of every block: blocks are scored best bound first in rounds (``first``
        blocks, then ``grow`` times more each round) until no block's bound reaches the threshold; gives up when
        after the second round more than ``give_up`` of the blocks still can (a first round of 16 blocks can leave a
        low threshold; screened rounds make the second one cheap)."""
        found = self.block_entries(terms)
        ub = self.block_bounds_all(qw, found)  # a block's bound is set to 0 once it is scored
        ords, scores = seed
        theta = _kth(scores, k)
        done = dropped = rounds = 0
        batch = first
        while True:
            live = np.flatnonzero(ub * accuracy >= theta) if theta > 0 else np.flatnonzero(ub > 0)
            if rounds == 2 and give_up < 1 and theta > 0 and live.size > give_up * self.n_blocks:
                return None, scores, self._info(done, dropped, rounds, self.n_blocks, gave_up=True)
            if live.size == 0:
                break
            if live.size > batch:  # the `batch` best bounds
                sel = np.sort(live[np.argpartition(ub[live], live.size - batch)[live.size - batch :]])
            else:
                sel = live
            ent = self._sparse_entries(sel, found)
            o, s, n = self.score_blocks(sel, ent, terms, qw, docs, weights, dequant, found, theta, ub[sel], accuracy)
            ords, scores, theta = _merge_candidates(ords, scores, o, s, alive, k)
            ub[sel] = 0
            done += n
            dropped += sel.size - n
            rounds += 1
            batch *= grow
        return ords, scores, self._info(done, dropped, rounds, self.n_blocks, gave_up=False)

    def block_entries(self, terms: np.ndarray) -> "_BlockEntries":
        """Per query, for :meth:`search_blocks`: the terms without a dense row, their block entries (copied term by
        term: contiguous slices) and search keys ``rank * n_blocks + block`` (ascending)."""
        rows = np.asarray(self.dense_row)[terms]
        dense_at = np.flatnonzero(rows >= 0)
        sparse_at = np.flatnonzero(rows < 0)
        t = terms[sparse_at]
        lo, hi = self.tb_indptr[t], self.tb_indptr[t + 1]
        counts = hi - lo
        spans = list(zip(lo.tolist(), hi.tolist()))
        if spans:
            blocks = np.concatenate([self.tb_block[a:b] for a, b in spans])
            maxes = np.concatenate([self.tb_max[a:b] for a, b in spans])
        else:
            blocks, maxes = np.zeros(0, np.int32), np.zeros(0, np.uint8)
        # the entry at position p of the copies, of the rank-th term, is p + first[rank]
        first = lo - (np.cumsum(counts) - counts)
        keys = blocks.astype(np.int64)
        keys += np.repeat(np.arange(sparse_at.size, dtype=np.int64) * self.n_blocks, counts)
        slot = np.full(self.n_blocks, -1, np.int32)
        return _BlockEntries(dense_at, rows[dense_at], sparse_at, counts, first, blocks, maxes, keys, slot)

    def block_bounds_all(self, qw: np.ndarray, found: "_BlockEntries") -> np.ndarray:
        """Upper bound of every block's score for the query (float32[n_blocks])."""
        ub = np.zeros(self.n_blocks, np.float32)
        if found.dense_at.size:
            row = np.empty(self.n_blocks, np.float32)
            for r, q in zip(found.dense_rows.tolist(), qw[found.dense_at].tolist(), strict=True):
                np.multiply(self.dense[r], np.float32(q), out=row)
                ub += row
        if found.blocks.size:
            w = found.maxes * np.repeat(qw[found.sparse_at].astype(np.float32), found.counts)
            ub += np.bincount(found.blocks, weights=w, minlength=self.n_blocks).astype(np.float32)
        ub *= self._slack(qw)
        return ub

    def _sparse_entries(self, sel: np.ndarray, found: "_BlockEntries") -> np.ndarray:
        """[terms without a dense row, blocks ``sel``]: each one's entry in each block, -1 where it has none."""
        m = found.sparse_at.size
        out = np.full((m, sel.size), -1, np.int64)
        if not found.keys.size:
            return out
        if m * sel.size * PROBE_COST < found.keys.size:  # few probes: search them in the query's sorted keys
            probe = (np.arange(m, dtype=np.int64)[:, None] * self.n_blocks + sel[None, :]).ravel()
            pos = np.minimum(np.searchsorted(found.keys, probe), found.keys.size - 1)
            hit = np.flatnonzero(found.keys[pos] == probe)
            pos = pos[hit]
            out.ravel()[hit] = pos + found.first[found.keys[pos] // self.n_blocks]
            return out
        # many: one pass over the query's entries, each looking up its block's place in ``sel``
        found.slot[sel] = np.arange(sel.size, dtype=np.int32)
        at = found.slot[found.blocks]
        found.slot[sel] = -1
        pos = np.flatnonzero(at >= 0)
        rank = found.keys[pos] // self.n_blocks
        out[rank, at[pos]] = pos + found.first[rank]
        return out

    def _slack(self, qw: np.ndarray) -> np.float32:
        # bounds are float32 sums of n rounded-up terms, within n * 2**-24 (relative) of the exact sum: widen them
        return np.float32(self.bscale * (_SLACK + 2.0 * qw.size * 2.0**-24))

    def search_superblocks(
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
        first: int = 32,
        grow: int = 8,
        give_up: float = 0.25,
    ) -> Tuple[Optional[np.ndarray], np.ndarray, Dict[str, int]]:
        """:meth:`search` by superblocks.

        Superblocks are taken best bound first, in rounds (``first`` blocks' worth, then ``grow`` times more each
        round); a round bounds the blocks of its superblocks and scores those that can still reach the threshold.
        The search gives up (returns ``None`` ordinals) when, after the first round, the blocks whose bound reaches
        the threshold (times ``accuracy``) exceed ``give_up`` of all blocks: the bounds are too loose for this
        query (documents in an order where blocks are not coherent) and the caller's exhaustive scan is cheaper.
        The approximate mode gives up the same way, so it is never much slower than the exact search (and then
        exact)."""
        found = self.superblock_entries(terms, qw)
        sub = found.sub
        cand = np.flatnonzero(sub > 0)
        ords, scores = seed
        theta = _kth(scores, k)
        done = dropped = bounded = rounds = 0
        batch = max(1, min(first, self.n_blocks // 32) // SUPER)  # small collections: a first round of 1/32
        while cand.size:
            # the next superblocks, best bound first; those below the threshold cannot hold a top-k document
            live = cand[sub[cand] * accuracy >= theta] if theta > 0 else cand
            if live.size == 0:
                break
            if live.size > batch:
                part = np.argpartition(-sub[live], batch - 1)
                take, cand = np.sort(live[part[:batch]]), live[part[batch:]]
            else:
                take, cand = np.sort(live), live[:0]
            blk, ub, cells = self.expand(take, qw, found)
            bounded += blk.size
            keep = np.flatnonzero((ub * accuracy >= theta) & (ub > 0))
            rounds += 1
            batch *= grow
            if keep.size:
                sel = blk[keep]
                ent = self.kept_entries(found, keep, blk.size, cells)
                bounds = ub[keep]
                o, s, n = self.score_blocks(sel, ent, terms, qw, docs, weights, dequant, found, theta, bounds, accuracy)
                ords, scores, theta = _merge_candidates(ords, scores, o, s, alive, k)
                done += n
                dropped += sel.size - n
            if rounds == 2 and give_up < 1 and theta > 0 and cand.size:
                # the blocks that could still reach the threshold, from the bounds of a sample of the superblocks
                live = cand[sub[cand] * accuracy >= theta]
                if live.size * SUPER > give_up * self.n_blocks:
                    sample = np.sort(live[:: max(1, live.size // 64)])
                    _, ub_s, _ = self.expand(sample, qw, found)
                    share = np.count_nonzero(ub_s * accuracy >= theta) / max(1, ub_s.size)
                    if share * live.size * SUPER > give_up * self.n_blocks:
                        return None, scores, self._info(done, dropped, rounds, bounded, gave_up=True)
        return ords, scores, self._info(done, dropped, rounds, bounded, gave_up=False)

    def _info(self, scored: int, dropped: int, rounds: int, bounded: int, gave_up: bool) -> Dict[str, int]:
        return {
            "blocks": int(self.n_blocks),
            "blocks_scored": scored,
            "blocks_dropped": dropped,
            "blocks_bounded": bounded,
            "rounds": rounds,
            "gave_up": int(gave_up),
        }


class _BlockEntries(NamedTuple):
    """A query's terms for :meth:`BlockMax.search_blocks`: ``dense_at`` (positions in the query) with dense rows
    ``dense_rows``; ``sparse_at`` with ``counts`` block entries each, copied in query order: their ``blocks`` and
    ``maxes``, the entry at position ``p`` of the copies (of the ``rank``-th such term) being ``p + first[rank]``;
    ``keys`` (``rank * n_blocks + block``, ascending) to search them. ``slot``: scratch, -1 per block."""

    dense_at: np.ndarray
    dense_rows: np.ndarray
    sparse_at: np.ndarray
    counts: np.ndarray
    first: np.ndarray
    blocks: np.ndarray
    maxes: np.ndarray
    keys: np.ndarray
    slot: np.ndarray


class _SuperblockEntries(NamedTuple):
    """A query's terms split by how their block entries are found: ``dense_at`` (positions in the query) through
    the dense rows ``dense_rows`` (bounds) and the entry map (scoring); ``sparse_at`` through their superblock
    entries, copied in query order: the one at position ``p`` (of the ``rank[p]``-th such term, in superblock
    ``sb_of[p]``) is ``p + first[rank[p]]``, searched by ``keys`` (``rank * n_super + superblock``, ascending);
    their block entries end before ``hi``.
    ``slot``: scratch, -1 per superblock. ``sub``: every superblock's bound; ``slack``: the factor the bounds were
    widened by."""

    dense_at: np.ndarray
    dense_rows: np.ndarray
    sparse_at: np.ndarray
    hi: np.ndarray
    first: np.ndarray
    rank: np.ndarray
    sb_of: np.ndarray
    keys: np.ndarray
    slot: np.ndarray
    sub: np.ndarray
    slack: np.float32


class _Superblocks(NamedTuple):
    """See :meth:`BlockMax.superblocks`."""

    n_super: int
    dense: np.ndarray
    dense_blocks: np.ndarray
    indptr: np.ndarray
    ids: np.ndarray
    maxes: np.ndarray
    start: np.ndarray
    words: np.ndarray


def _merge_candidates(
    ords: np.ndarray, scores: np.ndarray, o: np.ndarray, s: np.ndarray, alive: Optional[np.ndarray], k: int
) -> Tuple[np.ndarray, np.ndarray, float]:
    """Add a round's scored documents (removed ones dropped) to the candidates; keep those that can still be in the
    top k (ties included); the new threshold."""
    if alive is not None and o.size:
        o, s = o[alive[o]], s[alive[o]]
    ords = np.concatenate([ords, o])
    scores = np.concatenate([scores, s])
    if scores.size > 4 * k:
        th = _kth(scores, k)
        m = scores >= th
        ords, scores = ords[m], scores[m]
    return ords, scores, _kth(scores, k)


def _kth(scores: np.ndarray, k: int) -> float:
    """The k-th largest score (0 when there are fewer than k)."""
    if scores.size < k:
        return 0.0
    return float(np.partition(scores, scores.size - k)[scores.size - k])
