"""Encode-time pruning (OpenSearch PruneUtils semantics), checked against a plain-Python reference on real vectors."""

from __future__ import annotations

import numpy as np
import pytest

from splade_onnx import Expander, SparseVector
from splade_onnx.encode.pruning import prune


def ref_prune(v: SparseVector, method: str, value: float) -> dict:
    """Straight transcription of OpenSearch's PruneUtils on a {token_id: weight} map (ties: lower id first)."""
    items = sorted(zip(v.indices.tolist(), v.values.tolist()), key=lambda t: (-t[1], t[0]))
    if method == "top_k":
        return dict(items[: int(value)])
    if method == "max_ratio":
        mx = float(np.float32(max(w for _, w in items))) if items else 0.0
        thr = float(np.float32(value) * np.float32(mx))
        return {i: w for i, w in items if w >= thr}
    if method == "abs_value":
        return {i: w for i, w in items if w >= float(np.float32(value))}
    if method == "alpha_mass":
        total = 0.0
        for _, w in items:
            total += w
        out, run = {}, 0.0
        for i, w in items:
            run += w
            if run <= value * total:
                out[i] = w
        return out
    raise AssertionError(method)


@pytest.fixture(scope="module")
def real_vectors(tiny_artifact, scifact_texts):
    e = Expander(tiny_artifact)
    texts = scifact_texts[::4][:60]
    return e, e.expand(texts, max_length=128)


CASES = [
    ("top_k", 1),
    ("top_k", 10),
    ("top_k", 64),
    ("top_k", 100000),
    ("max_ratio", 0.0),
    ("max_ratio", 0.1),
    ("max_ratio", 0.5),
    ("alpha_mass", 0.0),
    ("alpha_mass", 0.3),
    ("alpha_mass", 0.9),
    ("abs_value", 0.0),
    ("abs_value", 0.5),
    ("abs_value", 1.2),
]


@pytest.mark.parametrize("method,value", CASES)
def test_prune_matches_reference_on_real_vectors(real_vectors, method, value):
    _, vecs = real_vectors
    got = prune(vecs, method, value)
    assert len(got) == len(vecs)
    shrunk = 0
    for v, g in zip(vecs, got):
        ref = ref_prune(v, method, value)
        assert g.indices.tolist() == sorted(ref), (method, value)
        assert np.all(np.diff(g.indices) > 0)
        np.testing.assert_array_equal(g.values, np.array([ref[i] for i in sorted(ref)], dtype=np.float32))
        shrunk += len(g) < len(v)
    if (method, value) not in {("top_k", 100000), ("max_ratio", 0.0), ("abs_value", 0.0)}:
        assert shrunk > 0  # the case actually prunes something on real vectors


def test_prune_semantics_boundaries():
    v = SparseVector(np.array([3, 5, 7, 9], np.int32), np.array([1.0, 4.0, 2.0, 4.0], np.float32))
    # top_k: ties at the cut broken by the lower token id
    assert prune(v, "top_k", 1).indices.tolist() == [5]
    assert prune(v, "top_k", 3).indices.tolist() == [5, 7, 9]
    # max_ratio / abs_value are inclusive (>=)
    assert prune(v, "max_ratio", 0.5).indices.tolist() == [5, 7, 9]
    assert prune(v, "abs_value", 2.0).indices.tolist() == [5, 7, 9]
    # alpha_mass: total 11; running sums 4, 8, 10, 11 -> alpha 8/11 keeps exactly the first two (<=)
    assert prune(v, "alpha_mass", 8 / 11).indices.tolist() == [5, 9]
    assert prune(v, "alpha_mass", 0.3).indices.tolist() == []  # the largest weight alone exceeds the mass
    empty = SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32))
    assert [len(x) for x in prune([empty, v, empty], "alpha_mass", 0.9)] == [0, 2, 0]  # 4, 8 <= 9.9 < 10


@pytest.mark.parametrize(
    "method,value",
    [("top_k", 0), ("top_k", 2.5), ("max_ratio", 1.0), ("alpha_mass", -0.1), ("abs_value", -1), ("nope", 1)],
)
def test_prune_rejects_values_outside_opensearch_ranges(method, value):
    with pytest.raises(ValueError):
        prune(SparseVector(np.array([1], np.int32), np.array([1.0], np.float32)), method, value)


def test_expand_prune_argument(real_vectors, scifact_texts):
    e, vecs = real_vectors
    texts = scifact_texts[::4][:60]
    got = e.expand(texts, max_length=128, prune=("top_k", 16))
    assert all(len(g) == min(16, len(v)) for g, v in zip(got, vecs))
    assert got == prune(vecs, "top_k", 16)
    q = e.encode_queries(texts[:3], prune={"prune_type": "max_ratio", "prune_ratio": 0.4})
    assert q == prune(e.encode_queries(texts[:3]), "max_ratio", 0.4)
    e2 = Expander(e.path, prune="abs_value=0.8")
    assert e2.expand(texts[:5], max_length=128) == prune(vecs[:5], "abs_value", 0.8)
