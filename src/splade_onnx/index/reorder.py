"""Document reordering by recursive graph bisection (BP), in numpy: similar documents get neighbouring ordinals.

Block-max pruning (``splade_onnx.index.blocks``) can skip a block only when its bound, the sum of each query term's
largest weight in the block, falls below the k-th best score; with documents in arbitrary order nearly every block
holds some document with each frequent term, so nearly no block can be skipped. Grouping documents that share terms
into the same blocks makes the bounds tight.

``bp_order`` is the graph bisection of Dhulipala et al. (KDD 2016), in the form PISA and BMP use: split the
documents into two halves, then repeatedly swap the pairs of documents whose move most lowers the estimated cost
of the two halves' postings (``sum_t deg * log2(n / (deg + 1))`` per half, ``deg`` = documents of the half holding
term ``t``), then recurse into each half down to parts of ``leaf_size`` documents. All parts of one level are
processed together, vectorised over the postings. Only the heaviest postings (``max_terms`` per document on
average, one weight threshold for the collection) are used, and terms held by more than half or only one of the
documents are left out: they do not tell documents apart. The order is a heuristic: it changes speed, never results
(the search is exact in any order).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from splade_onnx.index.blocks import ranges


def _selected_postings(
    docs: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    n_docs: int,
    vocab_size: int,
    max_terms: int,
    max_df: float,
) -> "tuple[np.ndarray, np.ndarray]":
    """(document, term) pairs used for the bisection, grouped by term: terms held by 2 .. ``max_df * n_docs``
    documents, and of those the ``max_terms * n_docs`` heaviest postings (one global weight threshold)."""
    df = np.bincount(terms, minlength=vocab_size)
    keep = ((df >= 2) & (df <= max_df * n_docs))[terms]
    kept_weights = weights[keep]
    n_keep = min(kept_weights.size, max_terms * n_docs) if max_terms else kept_weights.size
    if n_keep < kept_weights.size:
        keep &= weights >= np.partition(kept_weights, kept_weights.size - n_keep)[kept_weights.size - n_keep]
    docs, terms = docs[keep].astype(np.int64), terms[keep].astype(np.int64)
    if terms.size and bool(np.any(terms[1:] < terms[:-1])):
        by_term = np.argsort(terms, kind="stable")
        docs, terms = docs[by_term], terms[by_term]
    return docs, terms


def bp_order(
    indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, vocab_size: int, **options: Any
) -> np.ndarray:
    """A permutation of the documents of a CSR matrix (``order[new] = old``) that groups similar documents;
    ``options`` are those of :func:`bp_order_postings`."""
    indptr = np.asarray(indptr, np.int64)
    n_docs = indptr.size - 1
    rows = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(indptr))
    return bp_order_postings(rows, np.asarray(indices), np.asarray(values), n_docs, vocab_size, **options)


def bp_order_postings(
    docs: np.ndarray,
    terms: np.ndarray,
    weights: np.ndarray,
    n_docs: int,
    vocab_size: int,
    *,
    leaf_size: int = 16,
    max_terms: int = 32,
    iterations: int = 20,
    max_df: float = 0.5,
    seed: Optional[int] = 0,
    min_swaps: float = 0.001,
) -> np.ndarray:
    """A permutation of the documents (``order[new] = old``) that groups similar documents, from postings given as
    parallel (document, term, weight) arrays in any order (term-major postings avoid a sort).

    ``leaf_size``: stop splitting parts of at most this many documents (the block size the index will use).
    ``max_terms``: postings used per document on average (the heaviest of the collection). ``iterations``: swap
    rounds per level at most (fewer once under ``min_swaps`` of the documents move, or when pairs start to swap
    back and forth). ``max_df``: terms held by more than this share of the documents are left out. ``seed``: the
    first split is a random permutation (``None``: the given order).
    """
    if leaf_size < 1:
        raise ValueError(f"leaf_size must be at least 1, got {leaf_size}")
    if iterations < 0 or max_terms < 0:
        raise ValueError("iterations and max_terms must not be negative")
    if n_docs <= leaf_size:
        return np.arange(n_docs, dtype=np.int64)
    p_doc, p_term = _selected_postings(docs, terms, weights, n_docs, vocab_size, max_terms, max_df)
    doc_at = np.arange(n_docs, dtype=np.int64) if seed is None else np.random.default_rng(seed).permutation(n_docs)
    pos = np.empty(n_docs, np.int64)  # position of each document in the order; doc_at is its inverse
    pos[doc_at] = np.arange(n_docs)
    # the postings stay grouped by (part, term): at the first level one part, so by term
    bounds = np.array([0, n_docs], np.int64)  # the parts are position ranges [bounds[i], bounds[i + 1])
    while True:
        sizes = np.diff(bounds)
        active = sizes > leaf_size
        if not active.any() or p_doc.size == 0:
            break
        starts = bounds[:-1]
        mids = starts + sizes // 2
        part_of_pos = np.repeat(np.arange(sizes.size), sizes)
        # drop the postings of finished parts; segments = runs of equal (part, term)
        p_part = part_of_pos[pos[p_doc]]
        keep = active[p_part]
        if not keep.all():
            p_doc, p_term, p_part = p_doc[keep], p_term[keep], p_part[keep]
        new_seg = np.ones(p_doc.size, bool)
        new_seg[1:] = (p_part[1:] != p_part[:-1]) | (p_term[1:] != p_term[:-1])
        seg_start = np.flatnonzero(new_seg)
        seg = np.cumsum(new_seg) - 1
        seg_total = np.diff(np.append(seg_start, p_doc.size))
        seg_part = p_part[seg_start]
        n1, n2 = mids - starts, bounds[1:] - mids
        lg = (np.log2(np.maximum(n1, 1)) - np.log2(np.maximum(n2, 1)))[seg_part]  # log2(n1 / n2)
        # f[x + 1] = x * log2(x + 1): a half's cost is sum_t (deg_t * log2(n) - f(deg_t)); f(-1) is never used
        x = np.arange(int(seg_total.max()) + 2, dtype=np.float64)
        f = np.concatenate([[0.0], x * np.log2(x + 1.0)])
        seg2 = 2 * seg
        # the documents of the parts to split, by position; pairs: left i-th best with right i-th best
        act_parts = np.flatnonzero(active)
        n_pairs = np.minimum(n1, n2)[act_parts]
        act_pos = np.flatnonzero(active[part_of_pos])
        grp = (2 * part_of_pos + (np.arange(n_docs) >= mids[part_of_pos]))[act_pos].astype(np.float64)
        left_slots = ranges(starts[act_parts], starts[act_parts] + n_pairs)
        right_slots = left_slots + np.repeat(mids[act_parts] - starts[act_parts], n_pairs)
        last_swaps = n_docs + 1
        at = np.empty(p_doc.size, np.int64)  # per posting, its gain's place in `gains` (reused by every round)
        p_gain = np.empty(p_doc.size, np.float64)
        for _ in range(iterations):
            side = pos >= mids[part_of_pos[pos]]  # True: the document is in the right half
            p_right = side[p_doc]  # bool: a byte per posting
            d2 = np.add.reduceat(p_right, seg_start, dtype=np.int64)  # per segment, its documents in the right half
            d1 = seg_total - d2
            base = f[d1 + 1] + f[d2 + 1]
            # cost saved when one document holding the term moves to the other half: [left -> right, right -> left]
            gains = np.empty((seg_start.size, 2))
            gains[:, 0] = lg - base + f[d1] + f[d2 + 2]
            gains[:, 1] = f[d1 + 2] + f[d2] - base - lg
            np.add(seg2, p_right, out=at)
            np.take(gains.ravel(), at, out=p_gain)
            gain = np.bincount(p_doc, weights=p_gain, minlength=n_docs)
            # sort each half by gain, best first, in place: key = group + a monotone squash of -gain into (0, 1)
            ranked = act_pos[np.argsort(grp + (0.5 - np.arctan(gain[doc_at[act_pos]]) / np.pi))]
            a, b = doc_at[ranked[left_slots]], doc_at[ranked[right_slots]]
            swap = gain[a] + gain[b] > 0
            n_swaps = int(swap.sum())
            # stop when (nearly) nothing moves any more, or when pairs start swapping back and forth
            if n_swaps <= min_swaps * act_pos.size or n_swaps >= last_swaps:
                break
            last_swaps = n_swaps
            a, b = a[swap], b[swap]
            pa, pb = pos[a], pos[b]
            pos[a], pos[b] = pb, pa
            doc_at[pb], doc_at[pa] = a, b
        # split: the postings move to (child part, term) order; a stable sort on the child keeps the term order
        child = 2 * p_part + (pos[p_doc] >= mids[p_part])
        o = np.argsort(child, kind="stable")
        p_doc, p_term = p_doc[o], p_term[o]
        bounds = np.unique(np.concatenate([bounds, mids[active]]))
    return doc_at
