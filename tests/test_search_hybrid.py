"""Hybrid fusion: RRF and normalised convex combination by hand-computed values; BM25 (bm25s) on real SciFact text;
weights tuned on one split only."""

from __future__ import annotations

import pytest

from splade_onnx.evaluate import tune
from splade_onnx.index.hybrid import BM25, fuse, fuse_convex, fuse_rrf, normalise

A = [("a", 10.0), ("b", 8.0), ("c", 2.0)]
B = [("c", 0.9), ("d", 0.5), ("a", 0.1)]


def test_rrf_by_hand():
    got = dict(fuse_rrf([A, B], k=None))
    assert got["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert got["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert got["b"] == pytest.approx(1 / 62) and got["d"] == pytest.approx(1 / 62)
    order = [d for d, _ in fuse_rrf([A, B], k=None)]
    assert order == ["a", "c", "b", "d"]  # a and c tie: first appearance wins; so do b and d
    w = dict(fuse_rrf([A, B], k=None, weights=[0.0, 1.0]))
    assert w["b"] == 0 and w["d"] == pytest.approx(1 / 62)
    assert len(fuse_rrf([A, B], k=2)) == 2


def test_convex_minmax_and_zscore_by_hand():
    na = dict(normalise(A))
    assert na == {"a": 1.0, "b": 0.75, "c": 0.0}
    got = dict(fuse_convex([A, B], [3, 1], k=None))  # weights normalised to 0.75 / 0.25
    nb = {"c": 1.0, "d": 0.5, "a": 0.0}
    assert got["a"] == pytest.approx(0.75 * 1 + 0.25 * 0)
    assert got["b"] == pytest.approx(0.75 * 0.75 + 0.25 * 0.0)  # absent from B: B's lowest normalised score
    assert got["d"] == pytest.approx(0.75 * 0.0 + 0.25 * nb["d"])
    z = dict(normalise(A, "zscore"))
    assert sum(z.values()) == pytest.approx(0.0, abs=1e-12)
    assert fuse("convex-zscore", A, B, 1.0, k=1)[0][0] == "a"
    with pytest.raises(ValueError, match="weights"):
        fuse_convex([A, B], [-1, 1])
    with pytest.raises(ValueError, match="method"):
        fuse("mean", A, B, 0.5)


def test_bm25_on_real_text_and_tuning_uses_only_the_given_split(scifact_texts):
    texts = scifact_texts[:300]
    ids = [f"d{i}" for i in range(len(texts))]
    bm = BM25.from_texts(texts, ids)
    # a document's own rarest words find it first
    for i in (3, 17, 150):
        words = sorted(set(texts[i].lower().split()), key=len, reverse=True)[:6]
        hits = bm.search(" ".join(words), k=5)
        assert hits[0][0] == ids[i], (i, words, hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert bm.search("", k=3) == []
    assert len(bm.search(["cancer", "protein"], k=3)) == 2
    # tuning: a split where only the "other" ranking is right picks weight 0 (all on the other list)
    qids = ["q1", "q2"]
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    sparse = [[("d9", 5.0), ("d8", 4.0)], [("d7", 3.0), ("d6", 1.0)]]
    other = [[("d1", 2.0), ("d9", 1.0)], [("d2", 9.0), ("d7", 1.0)]]
    method, w, nd = tune(qrels, qids, sparse, other)
    assert w < 0.5 and nd == pytest.approx(1.0)
    method, w, nd = tune(qrels, qids, other, sparse)
    assert w > 0.5 and nd == pytest.approx(1.0)
