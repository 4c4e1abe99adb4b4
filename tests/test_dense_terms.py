"""Dense rows of the most frequent terms: the exhaustive scan reads them instead of their postings and gives the
same results, bit for bit, as the postings alone and as brute force: real splade-tiny vectors in every weight dtype,
adversarial collections, after add/remove/compact and save/load with mmap; corrupt row files are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from splade_onnx import SparseIndex, SparseVector
from splade_onnx.errors import IndexFileError
from splade_onnx.index import sparse_index
from tests.test_search_exact import brute, csr_of, jittered, same, stored_matrix

pytestmark = pytest.mark.usefixtures("small_dense_threshold")


@pytest.fixture
def small_dense_threshold(monkeypatch):
    """Dense rows from 1,000 documents on (the default, 50,000, is above the test collections)."""
    monkeypatch.setattr(sparse_index, "DENSE_MIN_DOCS", 1000)


def postings_only(index: SparseIndex) -> SparseIndex:
    """The same index object with its dense rows switched off (the reference path)."""
    index._dense, index._dense_seg = None, index._segments[0]
    return index


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_real_vectors_dense_rows_equal_postings_and_brute_force(real, dtype):
    docs, queries, V = real
    rng = np.random.default_rng(0)
    coll = jittered(docs, 4000, rng) + list(docs[:40]) * 2  # exact duplicates: ties
    ids = [f"d{i}" for i in range(len(coll))]
    idx = SparseIndex.from_vectors(coll, ids, vocab_size=V, dtype=dtype)
    ref = SparseIndex.from_vectors(coll, ids, vocab_size=V, dtype=dtype)
    postings_only(ref)
    dense = idx._dense_index()
    assert dense is not None and dense.dense_terms.size > 0 and idx.dense_nbytes > 0
    assert dense.dense_rows.dtype == np.dtype(dtype)
    used = sum(bool(np.isin(q.indices, dense.dense_terms).any()) for q in queries)
    assert used >= len(queries) // 2  # most real queries hold a dense term
    D = stored_matrix(idx)
    alive = np.ones(len(coll), bool)
    for q in queries:
        for k in (1, 10, 100):
            hits = idx.search(q, k=k)
            assert hits == ref.search(q, k=k)  # bit for bit
            same(hits, brute(D, ids, alive, q, k))


def test_adversarial_dense_terms_ties_one_term_empty_and_large_k():
    rng = np.random.default_rng(3)
    V = 40
    vecs = []
    for i in range(2500):
        t = [0, 1] if i % 3 else [0]  # term 0 in every document, term 1 in two thirds: both dense
        t += sorted(rng.choice(np.arange(2, V - 1), int(rng.integers(0, 5)), replace=False).tolist())
        vecs.append(SparseVector(np.array(t, np.int32), rng.choice([0.5, 1.0], len(t)).astype(np.float32)))
    vecs[7] = SparseVector(np.zeros(0, np.int32), np.zeros(0, np.float32))  # an empty document
    ids = list(range(len(vecs)))
    idx = SparseIndex.from_vectors(vecs, ids, vocab_size=V)
    ref = postings_only(SparseIndex.from_vectors(vecs, ids, vocab_size=V))
    assert idx._dense_index() is not None and idx._dense_index().dense_terms.tolist() == [0, 1]
    D = stored_matrix(idx)
    alive = np.ones(len(vecs), bool)
    qs = [
        SparseVector(np.array([0], np.int32), np.array([1.0], np.float32)),  # only a dense term: massive ties
        SparseVector(np.array([0, 1], np.int32), np.array([0.5, 2.0], np.float32)),
        SparseVector(np.array([1, 5, 9], np.int32), np.array([1.0, 1.0, 1.0], np.float32)),
        SparseVector(np.array([V - 1], np.int32), np.array([1.0], np.float32)),  # no document has it
    ]
    for q in qs:
        for k in (1, 7, 5000):  # k > the collection
            hits = idx.search(q, k=k)
            assert hits == ref.search(q, k=k)
            same(hits, brute(D, ids, alive, q, k))
    assert idx.search(qs[3], k=3) == []
    top = idx.search(qs[0], k=4)  # every document but the empty one ties on term 0 (two weights): insertion order
    assert [h[0] for h in top] == [d for d in ids if d != 7 and vecs[d].values[0] == 1.0][:4]


def test_add_remove_compact_save_mmap_stay_exact(real, tmp_path):
    docs, queries, V = real
    rng = np.random.default_rng(4)
    first = jittered(docs, 2500, rng)
    later = jittered(docs, 500, rng)
    idx = SparseIndex.from_vectors(first, [f"a{i}" for i in range(2500)], vocab_size=V)
    assert idx._dense_index() is not None
    idx.add(later, [f"b{i}" for i in range(500)])  # a new segment: its postings are scanned, the rows stay valid
    removed = [f"a{i}" for i in range(0, 2500, 6)] + [f"b{i}" for i in range(0, 500, 4)]
    idx.remove(removed)
    ids_all = [f"a{i}" for i in range(2500)] + [f"b{i}" for i in range(500)]
    ip, ind, val = csr_of(first + later, V)
    D = sp.csr_matrix((val.astype(np.float64), ind, ip), shape=(3000, V))
    alive = np.array([i not in set(removed) for i in ids_all])

    def check(index):
        for q in queries:
            for k in (1, 10, 50):
                hits = index.search(q, k=k)
                same(hits, brute(D, ids_all, alive, q, k))
                assert not set(h[0] for h in hits) & set(removed)

    check(idx)
    before = {i: idx.search(q, k=20) for i, q in enumerate(queries)}
    idx.save(tmp_path / "ix")  # compacts: one segment, rows rebuilt over the renumbered documents and saved
    header = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert header["dense_terms"]["n_docs"] == len(idx) and "dense_rows.npy" in header["files"]
    loaded = SparseIndex.load(tmp_path / "ix", mmap=True, verify=True)
    assert isinstance(loaded._dense.dense_rows, np.memmap) and loaded._dense_seg is loaded._segments[0]
    check(loaded)
    assert {i: loaded.search(q, k=20) for i, q in enumerate(queries)} == before
    reference = postings_only(SparseIndex.load(tmp_path / "ix", mmap=True))
    for q in queries:
        assert loaded.search(q, k=30) == reference.search(q, k=30)


def test_corrupt_dense_rows_are_refused(real, tmp_path):
    docs, _, V = real
    idx = SparseIndex.from_vectors(jittered(docs, 1500, np.random.default_rng(5)), vocab_size=V)
    idx.save(tmp_path / "ix")
    data = tmp_path / "ix" / json.loads((tmp_path / "ix" / "index.json").read_text())["data"]
    f = data / "dense_rows.npy"
    pristine = f.read_bytes()
    f.write_bytes(pristine[: len(pristine) // 2])
    with pytest.raises(IndexFileError, match="dense_rows.npy"):
        SparseIndex.load(tmp_path / "ix")
    # a valid .npy listed consistently in the header, but holding another dtype than the postings: refused
    good = np.load(tmp_path / "ix" / data.name / "dense_terms.npy")
    np.save(f, np.zeros((good.size, len(idx)), np.float16))
    header = json.loads((tmp_path / "ix" / "index.json").read_text())
    header["files"]["dense_rows.npy"].update({"dtype": "float16", "bytes": f.stat().st_size})
    (tmp_path / "ix" / "index.json").write_text(json.dumps(header))
    with pytest.raises(IndexFileError, match="dense rows hold float16"):
        SparseIndex.load(tmp_path / "ix")
    # rows of the right dtype for fewer documents than the postings hold (their scores would be dropped): refused
    np.save(f, np.zeros((good.size, len(idx) - 10), np.dtype(idx.dtype)))
    header["files"]["dense_rows.npy"].update({"dtype": idx.dtype, "bytes": f.stat().st_size})
    header["files"]["dense_rows.npy"]["shape"] = [good.size, len(idx) - 10]
    header["dense_terms"]["n_docs"] = len(idx) - 10
    (tmp_path / "ix" / "index.json").write_text(json.dumps(header))
    with pytest.raises(IndexFileError, match="document count differs"):
        SparseIndex.load(tmp_path / "ix")


def test_no_dense_rows_below_the_threshold(real, monkeypatch):
    docs, queries, V = real
    monkeypatch.setattr(sparse_index, "DENSE_MIN_DOCS", 50_000)
    idx = SparseIndex.from_vectors(docs[:300], vocab_size=V)
    assert idx._dense_index() is None and idx.dense_nbytes == 0
    assert idx.search(queries[0], k=5) == idx.search(queries[0], k=5, exhaustive=True)
