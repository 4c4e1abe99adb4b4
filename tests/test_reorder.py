"""Document reordering (recursive graph bisection): it finds planted clusters, it never changes search results (real
splade-tiny vectors, pruned and exhaustive, after add/remove, after save and an mmap load), and it makes the block
bounds prune where the arbitrary order cannot."""

from __future__ import annotations

import numpy as np
import pytest

from splade_onnx import SparseIndex, SparseVector
from splade_onnx.index.reorder import bp_order
from tests.conftest import clustered
from tests.test_search_exact import brute, csr_of, jittered, same, stored_matrix


def planted(n_topics: int, per_topic: int, seed: int = 0):
    """Documents of ``n_topics`` topics, each topic its own 40 terms (a document takes 25 of them) plus 10 terms shared
    by every topic; returned shuffled, with each document's topic."""
    rng = np.random.default_rng(seed)
    V = n_topics * 40 + 10
    vecs, topic = [], []
    for t in range(n_topics):
        for _ in range(per_topic):
            own = t * 40 + rng.choice(40, 25, replace=False)
            shared = n_topics * 40 + rng.choice(10, 5, replace=False)
            ind = np.sort(np.concatenate([own, shared])).astype(np.int32)
            vecs.append(SparseVector(ind, rng.uniform(0.1, 2.0, ind.size).astype(np.float32)))
            topic.append(t)
    perm = rng.permutation(len(vecs))
    return [vecs[i] for i in perm], np.asarray(topic)[perm], V


def test_bp_order_recovers_planted_clusters():
    vecs, topic, V = planted(64, 32)
    ip, ind, val = csr_of(vecs, V)
    order = bp_order(ip, ind, val, V, leaf_size=16)
    assert np.array_equal(np.sort(order), np.arange(len(vecs)))  # a permutation
    pure = lambda o: np.mean([len(set(topic[o[i : i + 16]])) == 1 for i in range(0, len(o), 16)])  # noqa: E731
    assert pure(np.arange(len(vecs))) < 0.05  # as generated: no block holds one topic
    assert pure(order) >= 0.9, pure(order)


def test_bp_order_edge_cases():
    vecs, _, V = planted(2, 4)
    ip, ind, val = csr_of(vecs, V)
    assert bp_order(ip, ind, val, V, leaf_size=16).tolist() == list(range(8))  # no more documents than a leaf
    empty = np.zeros(41, np.int64)  # 40 documents without a posting
    assert sorted(bp_order(empty, np.zeros(0, np.int32), np.zeros(0, np.float32), V, leaf_size=4)) == list(range(40))
    with pytest.raises(ValueError, match="leaf_size"):
        bp_order(ip, ind, val, V, leaf_size=0)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_reordered_index_returns_the_same_hits(real, dtype, tmp_path, search_path):
    docs, queries, V = real
    rng = np.random.default_rng(5)
    coll = jittered(docs, 3000, rng)
    ids = [f"d{i}" for i in range(len(coll))]
    texts = [f"text of d{i}" for i in range(len(coll))]
    plain = SparseIndex.from_vectors(coll, ids, vocab_size=V, dtype=dtype)
    idx = SparseIndex.from_vectors(coll, ids, vocab_size=V, dtype=dtype)
    idx.texts = list(texts)
    idx.build_blocks(16, reorder=True)
    assert idx.ids != ids and sorted(idx.ids) == sorted(ids)  # the ordinals moved
    assert all(idx.text(d) == f"text of {d}" for d in ids[:50])  # texts follow their documents
    D = stored_matrix(plain)
    for q in queries:
        for k in (1, 10, 100):
            hits = idx.search(q, k=k)
            assert hits == idx.search(q, k=k, exhaustive=True)  # bit for bit
            same(hits, plain.search(q, k=k, exhaustive=True))  # ties may come in another order
            same(hits, brute(D, ids, np.ones(len(ids), bool), q, k))
    d = ids[123]
    assert idx.explain(queries[0], d) == plain.explain(queries[0], d)
    # add / remove after the reorder, then save and load with mmap: still exact
    more = jittered(docs, 200, rng)
    idx.add(more, [f"m{i}" for i in range(200)])
    plain.add(more, [f"m{i}" for i in range(200)])
    gone = ids[::9] + [f"m{i}" for i in range(0, 200, 4)]
    idx.remove(gone)
    plain.remove(gone)
    idx.save(tmp_path / "ix")
    loaded = SparseIndex.load(tmp_path / "ix", mmap=True, verify=True)
    for index in (idx, loaded):
        for q in queries:
            hits = index.search(q, k=10)
            assert hits == index.search(q, k=10, exhaustive=True)
            same(hits, plain.search(q, k=10))
            assert not set(h[0] for h in hits) & set(gone)


def test_reordering_makes_the_bounds_prune(real, search_path):
    """Clustered collection: reordered, the bounds prune (a third or less of the blocks taken in arbitrary order,
    where more queries give up)."""
    docs, queries, V = real
    coll = clustered(docs[:200], 40, np.random.default_rng(7))
    ip, ind, val = csr_of(coll, V)
    arbitrary = SparseIndex.from_csr(ip, ind, val, vocab_size=V)
    arbitrary.build_blocks(16)
    reordered = SparseIndex.from_csr(ip, ind, val, vocab_size=V)
    reordered.build_blocks(16, reorder=True)
    real_queries = queries[:32]

    def work(index):
        """Per query: whether it gave up (or took over a quarter of the blocks), and the blocks it took (scored, or
        dropped by a screen after reading their heaviest terms; all of them when it gave up and scanned)."""
        stats = [index.search_stats(q, k=10) for q in real_queries]
        taken = np.array([s["blocks"] if s["gave_up"] else s["blocks_scored"] + s["blocks_dropped"] for s in stats])
        return np.mean([bool(s["gave_up"]) or t > 0.25 * s["blocks"] for s, t in zip(stats, taken, strict=True)]), taken

    gave_up_arbitrary, taken_arbitrary = work(arbitrary)
    gave_up_reordered, taken_reordered = work(reordered)
    # measured: by blocks 128 vs 28 blocks per query (22% vs 3% of the queries over a quarter), by superblocks 311 vs
    # 35 (56% vs 6%)
    assert gave_up_reordered <= 0.1 and gave_up_reordered < gave_up_arbitrary, (gave_up_arbitrary, gave_up_reordered)
    assert taken_reordered.mean() < taken_arbitrary.mean() / 3, (taken_arbitrary.mean(), taken_reordered.mean())
    assert taken_reordered.mean() < 0.15 * reordered.search_stats(real_queries[0], k=10)["blocks"]
    for q in real_queries:
        same(reordered.search(q, k=10), arbitrary.search(q, k=10))


def test_cli_index_with_reordered_blocks(tiny_artifact, tmp_path):
    """`index --blocks 4 --reorder` saves a reordered index with its blocks; the same hits as a plain index; bad
    options are one line and exit 2 before any encoding."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sample = repo / "src" / "splade_onnx" / "data" / "sample_corpus.jsonl"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "splade_onnx", *args], capture_output=True, text=True, timeout=300)

    plain, pruned = tmp_path / "plain", tmp_path / "pruned"
    assert cli("index", str(sample), "--model", tiny_artifact, "--out", str(plain)).returncode == 0
    r = cli(
        "index", str(sample), "--model", tiny_artifact, "--out", str(pruned), "--blocks", "4", "--reorder", "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["blocks"] == 4 and json.loads(r.stdout)["reordered"] is True
    header = json.loads((pruned / "index.json").read_text())
    assert header["blocks"]["block_size"] == 4
    a, b = SparseIndex.load(plain), SparseIndex.load(pruned)
    assert a.ids != b.ids and sorted(a.ids) == sorted(b.ids)
    queries = ["how do vaccines protect against viruses?", "best way to make coffee", "sleep and memory"]
    outs = [cli("search", str(ix), *queries, "-k", "5", "--json").stdout.splitlines() for ix in (plain, pruned)]
    for qa, qb in zip(*outs, strict=True):
        ha, hb = json.loads(qa)["hits"], json.loads(qb)["hits"]
        assert [h["id"] for h in ha] == [h["id"] for h in hb]
        assert np.allclose([h["score"] for h in ha], [h["score"] for h in hb], atol=2e-4)
    for bad, message in ((["--reorder"], "--reorder needs --blocks"), (["--blocks", "3"], "power of two")):
        r = cli("index", str(sample), "--model", tiny_artifact, "--out", str(tmp_path / "x"), *bad)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
