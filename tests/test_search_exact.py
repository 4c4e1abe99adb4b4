"""Block-max pruned search equals brute force: real splade-tiny vectors and adversarial collections (ties, one-term
queries, only very frequent terms, empty results, k larger than the collection), after add/remove/compact and after
save/load with mmap; the approximate mode's knob; a corrupted block file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_onnx import SparseIndex, SparseVector
from splade_onnx.errors import IndexFileError
from tests.conftest import clustered


def brute(D: sp.csr_matrix, ids: list, alive: np.ndarray, q: SparseVector, k: int):
    """scipy CSR product in float64 over the live documents; best first, ties by insertion order."""
    s = np.asarray(D @ q.to_dense(D.shape[1]).astype(np.float64)).ravel()
    s[~alive] = 0
    order = [j for j in np.lexsort((np.arange(s.size), -s)) if s[j] > 0][:k]
    return [(ids[j], float(s[j])) for j in order]


def same(hits, ref, tol=1e-5):
    """Same ids in the same order, or a swap only among scores equal within tol (float summation order)."""
    assert len(hits) == len(ref), (len(hits), len(ref))
    a, b = np.array([h[1] for h in hits]), np.array([r[1] for r in ref])
    assert np.allclose(a, b, atol=tol, rtol=0), (hits[:5], ref[:5])
    for (hid, hs), (rid, rs) in zip(hits, ref, strict=False):
        if hid != rid:  # only acceptable inside a tie
            assert abs(hs - rs) <= tol and any(abs(x[1] - hs) <= tol for x in ref if x[0] == hid), (hid, rid)


def csr_of(vecs, V):
    indptr = np.concatenate([[0], np.cumsum([len(v.indices) for v in vecs])])
    ind = np.concatenate([v.indices for v in vecs]) if vecs else np.zeros(0, np.int32)
    val = np.concatenate([v.values for v in vecs]) if vecs else np.zeros(0, np.float32)
    return indptr, ind, val


@pytest.fixture(autouse=True)
def both_paths(search_path):
    """Every test here runs by blocks and by superblocks."""
    return search_path


def stored_matrix(idx: SparseIndex) -> sp.csr_matrix:
    ip, ind, val, _ = idx.to_csr()
    return sp.csr_matrix((val.astype(np.float64), ind, ip), shape=(len(ip) - 1, idx.vocab_size))


def jittered(docs, n, rng):
    """n documents drawn from real ones, each weight times a lognormal jitter (keeps real supports)."""
    out = []
    for j in rng.integers(0, len(docs), n):
        v = docs[int(j)]
        out.append(SparseVector(v.indices, (v.values * rng.lognormal(0, 0.2, v.values.size)).astype(np.float32)))
    return out


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_real_vectors_pruned_equals_brute_force_and_exhaustive(real, dtype):
    docs, queries, V = real
    rng = np.random.default_rng(0)
    coll = jittered(docs, 6000, rng) + list(docs[:50]) * 2  # exact duplicates: ties across blocks
    ids = [f"d{i}" for i in range(len(coll))]
    idx = SparseIndex.from_vectors(coll, ids, vocab_size=V, dtype=dtype)
    idx.build_blocks(16)
    D = stored_matrix(idx)
    alive = np.ones(len(coll), bool)
    pruned_somewhere = False
    for q in queries:
        for k in (1, 10, 100):
            hits = idx.search(q, k=k)
            assert hits == idx.search(q, k=k, exhaustive=True)  # bit for bit
            same(hits, brute(D, ids, alive, q, k))
        st_ = idx.search_stats(q, k=10)
        assert st_["blocks"] == (len(coll) + 15) // 16
        pruned_somewhere |= not st_["gave_up"] and st_["blocks_scored"] < st_["blocks"] // 2
    assert pruned_somewhere  # the bounds do prune on real queries (some duplicated documents, coherent blocks)


def test_adversarial_ties_one_term_frequent_empty_and_large_k():
    rng = np.random.default_rng(1)
    V = 50
    base = [SparseVector(np.array([1, 7, 9], np.int32), np.array([1.0, 0.5, 0.25], np.float32))]
    vecs = []
    for i in range(3000):
        if i % 97 == 0:
            vecs.append(base[0])  # identical documents spread over many blocks: every one ties
        else:
            m = int(rng.integers(0, 8))
            t = np.sort(rng.choice(np.arange(2, V - 1), m, replace=False)).astype(np.int32)
            vecs.append(SparseVector(t, rng.choice([0.5, 1.0, 2.0], m).astype(np.float32)))  # few values: ties
    vecs[5] = SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32))  # an empty document
    ids = list(range(len(vecs)))
    idx = SparseIndex.from_vectors(vecs, ids, vocab_size=V)
    idx.build_blocks(8)
    D = stored_matrix(idx)
    alive = np.ones(len(vecs), bool)
    df = np.bincount(np.concatenate([v.indices for v in vecs]), minlength=V)
    frequent = np.sort(np.argsort(-df)[:3]).astype(np.int32)
    qs = [
        base[0],
        SparseVector(np.array([9], np.int32), np.array([1.0], np.float32)),  # one term
        SparseVector(np.array([int(frequent[0])], np.int32), np.array([0.3], np.float32)),
        SparseVector(frequent, np.ones(3, np.float32)),  # only the most frequent terms
        SparseVector(np.array([V - 1], np.int32), np.array([1.0], np.float32)),  # no document has it: empty
        SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32)),
    ]  # an empty query
    for q in qs:
        for k in (1, 3, 31, 5000):  # k > the collection
            hits = idx.search(q, k=k)
            assert hits == idx.search(q, k=k, exhaustive=True)
            same(hits, brute(D, ids, alive, q, k))
    assert idx.search(qs[4], k=5) == [] and idx.search(qs[5], k=5) == []
    # the identical documents tie (only they hold term 1): the earliest inserted come first
    top = idx.search(SparseVector(np.array([1], np.int32), np.array([0.7], np.float32)), k=5)
    assert [h[0] for h in top] == [0, 97, 194, 291, 388] and len({h[1] for h in top}) == 1


def test_add_remove_compact_save_mmap_stay_exact(real, tmp_path):
    docs, queries, V = real
    rng = np.random.default_rng(2)
    first = jittered(docs, 3000, rng)
    idx = SparseIndex.from_vectors(first, [f"a{i}" for i in range(3000)], vocab_size=V)
    idx.build_blocks(32)
    built = idx.pruning_nbytes
    assert built > 0
    later = jittered(docs, 700, rng)
    idx.add(later[:400], [f"b{i}" for i in range(400)])  # not covered by the blocks yet: scored exhaustively
    idx.add(later[400:], [f"b{i}" for i in range(400, 700)])
    removed = [f"a{i}" for i in range(0, 3000, 7)] + [f"b{i}" for i in range(0, 700, 5)]
    idx.remove(removed)

    def check(index):
        ids_all = [f"a{i}" for i in range(3000)] + [f"b{i}" for i in range(700)]
        ip, ind, val = csr_of(first + later, V)
        D = sp.csr_matrix((val.astype(np.float64), ind, ip), shape=(3700, V))
        alive = np.array([i not in set(removed) for i in ids_all])
        for q in queries:
            for k in (1, 10, 50):
                hits = index.search(q, k=k)
                assert hits == index.search(q, k=k, exhaustive=True)
                same(hits, brute(D, ids_all, alive, q, k))
                assert not set(h[0] for h in hits) & set(removed)

    check(idx)
    idx.save(tmp_path / "ix")  # compacts (drops the removed) and saves the rebuilt blocks
    header = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert header["blocks"]["block_size"] == 32 and "blocks_tb_start.npy" in header["files"]
    loaded = SparseIndex.load(tmp_path / "ix", mmap=True, verify=True)
    assert loaded.pruning_nbytes > 0 and isinstance(loaded._blocks.tb_start, np.memmap)
    check(loaded)
    loaded.add(jittered(docs, 10, rng), [f"c{i}" for i in range(10)])
    for q in queries[:10]:
        assert loaded.search(q, k=10) == loaded.search(q, k=10, exhaustive=True)


def test_corrupted_block_files_are_refused(real, tmp_path):
    docs, queries, V = real
    idx = SparseIndex.from_vectors(docs[:300], vocab_size=V)
    idx.build_blocks(8)
    idx.save(tmp_path / "ix")
    data = tmp_path / "ix" / json.loads((tmp_path / "ix" / "index.json").read_text())["data"]
    f = data / "blocks_tb_start.npy"
    pristine = f.read_bytes()
    f.write_bytes(pristine[: len(pristine) // 2])
    with pytest.raises(IndexFileError, match="blocks_tb_start.npy"):
        SparseIndex.load(tmp_path / "ix")
    # same size, valid .npy, but every entry starts one posting late: refused at search time
    f.write_bytes(pristine)
    start = np.load(f)
    start[1:-1] += 1
    np.save(f, start)
    bad = SparseIndex.load(tmp_path / "ix", mmap=False)
    with pytest.raises(IndexFileError, match="corrupt"):
        for q in queries:
            bad.search(q, k=5)


def test_approximate_knob_is_monotone_and_exact_at_one(real):
    docs, queries, V = real
    rng = np.random.default_rng(3)
    idx = SparseIndex.from_vectors(jittered(docs, 5000, rng), vocab_size=V)
    idx.build_blocks(16)
    exact = idx.search(list(queries), k=10)
    assert idx.search(list(queries), k=10, accuracy=1.0) == exact
    scored = []
    for acc in (1.0, 0.8, 0.5, 0.2):
        stats = [idx.search_stats(q, 10, accuracy=acc) for q in queries]
        scored.append(sum(s["blocks"] if s["gave_up"] else s["blocks_scored"] for s in stats))  # gave up: all
        approx = idx.search(list(queries), k=10, accuracy=acc)
        for a, e in zip(approx, exact, strict=False):  # approximate hits are real documents with their exact scores
            assert [s for _, s in a] == sorted((s for _, s in a), reverse=True)
            assert len(a) == len(e)
    assert scored == sorted(scored, reverse=True) and scored[-1] < scored[0]
    with pytest.raises(ValueError, match="accuracy"):
        idx.search(queries[0], k=10, accuracy=0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    block=st.sampled_from([1, 2, 4, 16]),
    k=st.integers(1, 40),
    dtype=st.sampled_from(["float32", "float16", "uint8"]),
)
def test_property_pruned_equals_exhaustive(seed, block, k, dtype):
    rng = np.random.default_rng(seed)
    V, n = 40, int(rng.integers(1, 400))
    vecs = []
    for _ in range(n):
        m = int(rng.integers(0, 10))
        t = np.sort(rng.choice(V, m, replace=False)).astype(np.int32)
        vecs.append(SparseVector(t, rng.choice([0.25, 1.0, 3.0], m).astype(np.float32) * rng.random(m) ** 3))
    idx = SparseIndex.from_vectors(vecs, vocab_size=V, dtype=dtype)
    idx.build_blocks(block)
    idx.remove([i for i in range(n) if i % 11 == 3])
    D = stored_matrix(SparseIndex.from_vectors(vecs, vocab_size=V, dtype=dtype))
    alive = np.array([i % 11 != 3 for i in range(n)])
    for _ in range(5):
        m = int(rng.integers(1, 6))
        q = SparseVector(np.sort(rng.choice(V, m, replace=False)).astype(np.int32), rng.random(m).astype(np.float32))
        hits = idx.search(q, k=k)
        assert hits == idx.search(q, k=k, exhaustive=True)
        same(hits, brute(D, list(range(n)), alive, q, k))


def test_blocks_absent_for_small_collections_and_block_size_checked():
    idx = SparseIndex.from_vectors([SparseVector(np.array([1], np.int32), np.array([1.0], np.float32))], vocab_size=4)
    assert idx.search(SparseVector(np.array([1], np.int32), np.array([2.0], np.float32)), k=3) == [(0, 2.0)]
    assert idx.pruning_nbytes == 0
    with pytest.raises(ValueError, match="power of two"):
        idx.build_blocks(12)
    assert Path(__file__).name.startswith("test_search")


def test_batch_on_threads_equals_one_by_one(real):
    docs, queries, V = real
    idx = SparseIndex.from_vectors(jittered(docs, 3000, np.random.default_rng(4)), vocab_size=V)
    idx.build_blocks(16)
    one = [idx.search(q, k=10) for q in queries]
    assert idx.search(list(queries), k=10) == one
    assert idx.search(tuple(queries), k=10, workers=2) == one
    with pytest.raises(ValueError, match="workers"):
        idx.search(list(queries), k=10, workers=0)


@pytest.mark.parametrize("dtype,blocks_per_super", [("float32", 4), ("uint8", 4), ("uint8", 2), ("float32", 8)])
def test_superblock_and_block_bounds_hold(real, dtype, blocks_per_super, monkeypatch):
    """Every superblock's bound (the sum of each query term's largest block maximum over its blocks) and every
    block's bound are at least the best exact score in it; the derived superblock level (its maxima and each term's
    block maxima packed per superblock) equals what the block entries give directly; the search through it equals
    the exhaustive one. For each superblock size the module allows."""
    from splade_onnx.index import blocks

    monkeypatch.setattr(blocks, "SUPER", blocks_per_super)
    monkeypatch.setattr(blocks, "SUPERBLOCKS_MIN_BLOCKS", 0)
    SUPER = blocks_per_super
    docs, queries, V = real
    idx = SparseIndex.from_vectors(jittered(docs, 2500, np.random.default_rng(7)), vocab_size=V, dtype=dtype)
    idx.build_blocks(4)  # 625 blocks: 79 superblocks, the last one partial; dense rows exist
    bm = idx._block_index()
    sup = bm.superblocks()
    assert bm.n_blocks % SUPER and bm.dense.shape[0] > 0 and sup.n_super == -(-bm.n_blocks // SUPER)
    for t in range(V):
        lo, hi = int(bm.tb_indptr[t]), int(bm.tb_indptr[t + 1])
        want = np.zeros(sup.n_super, np.uint8)
        np.maximum.at(want, bm.tb_block[lo:hi] // SUPER, bm.tb_max[lo:hi])
        if bm.dense_row[t] >= 0:
            got = sup.dense[bm.dense_row[t]]
        else:
            got = np.zeros(sup.n_super, np.uint8)
            slo, shi = sup.indptr[t], sup.indptr[t + 1]
            got[sup.ids[slo:shi]] = sup.maxes[slo:shi]
            assert np.all(bm.tb_block[sup.start[slo:shi]] // SUPER == sup.ids[slo:shi])  # each run's first entry
            per_block = np.zeros(sup.n_super * SUPER, np.uint8)
            per_block[bm.tb_block[lo:hi]] = bm.tb_max[lo:hi]
            words = sup.words[slo:shi].view(np.uint8).reshape(-1, SUPER)
            np.testing.assert_array_equal(words, per_block.reshape(sup.n_super, SUPER)[sup.ids[slo:shi]])
        np.testing.assert_array_equal(got, want)
    n = len(idx)
    for q in queries:
        terms, qw = idx._query(q, None)
        if not terms.size:
            continue
        exact = idx._score_one(terms, qw, n)
        per_block = np.zeros(bm.n_blocks * bm.block_size)
        per_block[:n] = exact
        block_best = per_block.reshape(bm.n_blocks, bm.block_size).max(axis=1)
        found = bm.superblock_entries(terms, qw)
        super_best = np.zeros(sup.n_super * SUPER)
        super_best[: bm.n_blocks] = block_best
        assert np.all(found.sub >= super_best.reshape(sup.n_super, SUPER).max(axis=1))
        blk, ub, _ = bm.expand(np.arange(sup.n_super), qw, found)
        np.testing.assert_array_equal(blk, np.arange(sup.n_super * SUPER))  # a partial last superblock: bound 0
        assert not ub[bm.n_blocks :].any()
        ub = ub[: bm.n_blocks]
        assert np.all(ub >= block_best) and np.all((ub > 0) >= (block_best > 0))
        hits = idx.search(q, k=10)
        assert hits == idx.search(q, k=10, exhaustive=True) and len(hits) == 10


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_screened_rounds_keep_every_document_that_can_reach_the_threshold(real, dtype):
    """A long query's round screened by its heaviest terms drops blocks, but never one holding a document that
    reaches the threshold; the documents kept have the scores of the unscreened round, bit for bit."""
    from splade_onnx.index.blocks import SCREEN_MIN_TERMS

    docs, queries, V = real
    rng = np.random.default_rng(5)
    idx = SparseIndex.from_vectors(jittered(docs, 4000, rng), vocab_size=V, dtype=dtype)
    idx.build_blocks(16)
    bm, seg = idx._block_index(), idx._segments[0]
    deq = float(idx.scale or 0.0) if dtype == "uint8" else None
    long_queries = [q for q in queries if len(q.indices) >= SCREEN_MIN_TERMS]
    assert len(long_queries) >= 10
    dropped = 0
    for q in long_queries:
        terms, qw = idx._query(q, None)
        found = bm.block_entries(terms)
        ub = bm.block_bounds_all(qw, found)
        sel = np.flatnonzero(ub > 0)
        entries = bm._sparse_entries(sel, found)
        ords, scores, n = bm.score_blocks(sel, entries, terms, qw, seg.docs, seg.weights, deq, found)
        assert n == sel.size
        for rank in (1, 10, 100):
            theta = float(np.sort(scores)[-rank])
            o, s, n = bm.score_blocks(sel, entries, terms, qw, seg.docs, seg.weights, deq, found, theta, ub[sel])
            kept = dict(zip(o.tolist(), s.tolist(), strict=True))
            reach = scores >= theta
            assert all(kept.get(d) == x for d, x in zip(ords[reach].tolist(), scores[reach].tolist(), strict=True))
            dropped += sel.size - n
    assert dropped > 0


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_long_queries_on_reordered_blocks_equal_exhaustive_with_screened_rounds(real, dtype):
    """Clustered documents, reordered: long queries prune, their large rounds are screened (blocks dropped), and
    the hits equal the exhaustive search's bit for bit and brute force's."""
    docs, queries, V = real
    coll = clustered(docs[:150], 30, np.random.default_rng(11))
    ids = list(range(len(coll)))
    idx = SparseIndex.from_vectors(coll, ids, vocab_size=V, dtype=dtype)
    idx.build_blocks(16, reorder=True)
    D = stored_matrix(idx)
    row_ids = idx.to_csr()[3]  # the documents in their new order
    alive = np.ones(len(coll), bool)
    dropped = 0
    for q in queries:
        for k in (10, 50):
            hits = idx.search(q, k=k)
            assert hits == idx.search(q, k=k, exhaustive=True)
            same(hits, brute(D, row_ids, alive, q, k))
        dropped += idx.search_stats(q, k=10)["blocks_dropped"]
    assert dropped > 0
