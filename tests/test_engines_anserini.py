"""Lucene for real, through Anserini's fat jar: index the project's JsonVectorCollection output with
``IndexCollection -impact -pretokenized``, search pre-encoded queries with ``SearchCollection -impact -pretokenized``,
and get the top 10 of SparseIndex on the same quantised weights (ties aside). The full SciFact figure comes from
benchmarks/anserini_agreement.py; this is the small version (300 documents, 30 queries)."""

from __future__ import annotations

import json
import stat
import warnings

import numpy as np
import pytest

from splade_onnx import Expander, SparseVector
from splade_onnx.engines import anserini as A
from splade_onnx.io.corpus import read_corpus, read_qrels


@pytest.fixture(scope="module")
def java() -> str:
    try:
        return A.find_java()
    except A.AnseriniError as e:  # the one dependency pip cannot install
        pytest.skip(f"Lucene via Anserini needs Java 21+: {e}")


@pytest.fixture(scope="module")
def jar() -> str:
    try:
        return A.find_jar()
    except A.AnseriniError as e:
        pytest.fail(f"{e}")  # scripts/setup.sh provides it: its absence is a setup defect, not a reason to skip


@pytest.fixture(scope="module")
def scifact_small(tiny_artifact, datasets_dir):
    e = Expander(tiny_artifact)
    ids, texts = read_corpus(datasets_dir / "scifact" / "corpus.jsonl", limit=300)
    qrels = read_qrels(datasets_dir / "scifact" / "qrels" / "test.tsv")
    with open(datasets_dir / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        queries = {str(r["_id"]): r["text"] for r in map(json.loads, f)}
    qids = [q for q in queries if q in qrels][:30]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most abstracts are truncated at 128 tokens
        dv = e.encode_documents(texts, max_length=128)
    qv = e.encode_queries([queries[q] for q in qids])
    return e, [str(i) for i in ids], texts, dv, qids, qv


@pytest.mark.slow
def test_lucene_top10_equals_sparse_index_on_quantised_scifact(scifact_small, java, jar, tmp_path):
    e, ids, texts, dv, qids, qv = scifact_small
    coll = A.write_collection(tmp_path / "coll", ids, dv, e, texts=texts, docs_per_file=128)
    assert coll.count == 300 and len(coll.files) == 3
    first = json.loads(open(coll.files[0], encoding="utf-8").readline())
    assert first["id"] == ids[0] and first["contents"] == texts[0]
    assert all(isinstance(w, int) and w > 0 for w in first["vector"].values())
    topics = A.write_topics(tmp_path / "topics.tsv", qids, qv, e)
    assert topics.count == 30 and topics.empty == 0
    counters = A.index(coll.directory, tmp_path / "idx", java=java, jar=jar)
    assert counters["indexed"] == coll.count - coll.empty and counters.get("errors", 0) == 0
    lucene = A.search(tmp_path / "idx", topics.path, tmp_path / "run.txt", k=10, java=java, jar=jar)
    ours_index = A.reference_index(ids, dv, e.vocab_size)
    qq = [A.quantized_vector(v) for v in qv]
    ours = {q: h for q, h in zip(qids, ours_index.search(qq, k=10), strict=True)}
    assert set(lucene) == set(qids) and all(len(h) == 10 for h in lucene.values())
    cmp = A.compare_top_k(lucene, ours, k=10, index=ours_index, queries=dict(zip(qids, qq, strict=True)))
    assert cmp.compared == 30
    assert cmp.equal == 30, cmp.disagreements[:3]
    assert cmp.max_score < 2**24  # Lucene's float32 sums are exact integers below this
    # the scores really are the integer dot products of the quantised vectors
    d0, s0 = lucene[qids[0]][0]
    assert round(s0) == round(qq[0].dot(A.quantized_vector(dv[ids.index(d0)])))


def test_anserini_failure_is_a_clear_error(java, jar, tmp_path):
    with pytest.raises(A.AnseriniError, match=r"IndexCollection failed \(exit 1\): .*Invalid collection path"):
        A.index(tmp_path / "missing", tmp_path / "idx", java=java, jar=jar)


def test_compare_top_k_ties_aside_and_real_differences():
    ours = {"q": [("a", 9.0), ("b", 7.0), ("c", 7.0), ("d", 5.0), ("e", 5.0)]}
    swapped = {"q": [("a", 9.0), ("c", 6.999999), ("b", 7.0), ("d", 5.0), ("e", 4.999999)]}
    cmp = A.compare_top_k(swapped, ours, k=5)
    assert (cmp.equal, cmp.identical, cmp.with_ties) == (1, 0, 1)
    # a tie cut at rank k: another document of the same score is fine if it truly has it
    idx = A.reference_index(
        list("abcdef"), [SparseVector(np.array([1]), np.array([s], np.float32)) for s in (9, 7, 7, 5, 5, 5)], 4, scale=1
    )
    q = {"q": SparseVector(np.array([1]), np.array([1.0], np.float32))}
    ours5 = {"q": idx.search(q["q"], k=5)}
    cut = {"q": [("a", 9.0), ("b", 7.0), ("c", 7.0), ("d", 5.0), ("f", 5.0)]}
    assert A.compare_top_k(cut, ours5, k=5, index=idx, queries=q).equal == 1
    bad_cut = {"q": [("a", 9.0), ("b", 7.0), ("c", 7.0), ("d", 5.0), ("zz", 5.0)]}
    assert "not in the index" in A.compare_top_k(bad_cut, ours5, k=5, index=idx, queries=q).disagreements[0]["why"]
    not_tied = {"q": [("a", 9.0), ("b", 7.0), ("c", 7.0), ("d", 5.0), ("b", 5.0)]}
    assert "not the tied" in A.compare_top_k(not_tied, ours5, k=5, index=idx, queries=q).disagreements[0]["why"]
    wrong = {"q": [("a", 9.0), ("d", 7.0), ("c", 7.0), ("b", 5.0), ("e", 5.0)]}
    assert A.compare_top_k(wrong, ours, k=5).disagreements[0]["why"].startswith("ids with score 7.0")
    assert A.compare_top_k({"q": ours["q"][:4]}, ours, k=5).equal == 0
    assert A.compare_top_k({"q": [("a", 9.4)] + ours["q"][1:]}, ours, k=5).equal == 0


def test_find_java_refuses_an_old_java(tmp_path, monkeypatch):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("SPLADE_ONNX_JAVA", str(fake))
    with pytest.raises(A.AnseriniError, match=r"Java 17; Anserini needs Java 21\+"):
        A.find_java()
    monkeypatch.setenv("SPLADE_ONNX_ANSERINI_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(A.AnseriniError, match="no such Anserini jar"):
        A.find_jar()


def test_topics_refuse_what_a_pretokenized_line_cannot_hold(tmp_path):
    vocab = ["[PAD]", "a b", "ok"]
    with pytest.raises(ValueError, match="whitespace"):
        A.write_topics(tmp_path / "t.tsv", ["1"], [SparseVector(np.array([1]), np.array([1.0], np.float32))], vocab)
    with pytest.raises(ValueError, match="tab or newline"):
        A.write_topics(tmp_path / "t.tsv", ["1\t2"], [SparseVector(np.array([2]), np.array([1.0], np.float32))], vocab)
    vecs = [
        SparseVector(np.array([2]), np.array([0.004], np.float32)),
        SparseVector(np.array([1, 2]), np.array([0.004, 0.034], np.float32)),
    ]
    t = A.write_topics(tmp_path / "t.tsv", ["7", "8"], vecs, vocab)
    assert (t.count, t.empty) == (2, 1)
    assert open(t.path).read() == "7\t\n8\tok ok ok\n"  # 0.4 rounds to 0 (dropped), 3.4 to 3 repeats


@pytest.mark.slow
def test_index_counts_are_read_past_a_thousand_documents(java, jar, tmp_path):
    # Anserini prints its counters with thousands separators ("indexed: 1,234"): the count must not stop at the comma
    rng = np.random.default_rng(0)
    names = [f"t{i}" for i in range(50)]
    vectors = [
        SparseVector(
            np.sort(rng.choice(50, 5, replace=False)).astype(np.int32), rng.uniform(0.5, 2, 5).astype(np.float32)
        )
        for _ in range(1234)
    ]
    coll = A.write_collection(tmp_path / "coll", [f"d{i}" for i in range(1234)], vectors, names)
    counters = A.index(coll.directory, tmp_path / "idx", java=java, jar=jar)
    assert counters["indexed"] == 1234 and counters.get("errors", 0) == 0
