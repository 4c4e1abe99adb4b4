"""SparseIndex from Parquet shards (`from_parquet`, `index --from-vectors`) and `SparseIndex.merge`, checked equal to
indexes built in process."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="the [parquet] extra (pyarrow) is not installed")
import pyarrow.parquet as pq  # noqa: E402

from splade_onnx import Expander, SparseIndex  # noqa: E402
from splade_onnx.cli import main  # noqa: E402
from splade_onnx.errors import IndexFileError  # noqa: E402
from splade_onnx.index.sparse_index import model_info  # noqa: E402
from splade_onnx.io.corpus import read_corpus  # noqa: E402
from splade_onnx.jobs.encode import run_encode_job  # noqa: E402

MAXLEN = 128
QUERIES = [
    "stem cells differentiation",
    "vitamin D deficiency and bone density",
    "tumor suppressor gene p53",
    "antibiotic resistance in bacteria",
    "insulin signalling",
]


@pytest.fixture(scope="module")
def job(datasets_dir, tiny_artifact, tmp_path_factory):
    """An encode job over 150 SciFact documents (3 shards, texts kept) and the in-process index of the same."""
    tmp = tmp_path_factory.mktemp("shards")
    with open(datasets_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()][:150]
    corpus = tmp / "c.jsonl"
    corpus.write_text("".join(lines), encoding="utf-8")
    out = tmp / "vectors"
    run_encode_job(corpus, tiny_artifact, out, shard_size=60, max_length=MAXLEN, store_text=True, workers=2)
    ids, texts = read_corpus(corpus)
    e = Expander(tiny_artifact)
    vecs = e.encode_documents(texts, max_length=MAXLEN)
    ref = SparseIndex(e.vocab_size, vocab=e.vocab, model=model_info(e))  # what SparseIndex.from_expander builds
    ref.add(vecs, ids, texts)
    qv = e.encode_queries(QUERIES)
    return out, ref, ids, texts, e, qv, vecs


def assert_same_index(got: SparseIndex, ref: SparseIndex, qv, texts: bool = True) -> None:
    assert got.ids == ref.ids and got.vocab_size == ref.vocab_size and got.dtype == ref.dtype
    gi, gj, gv, gids = got.to_csr()
    ri, rj, rv, rids = ref.to_csr()
    assert gids == rids
    np.testing.assert_array_equal(gi, ri)
    np.testing.assert_array_equal(gj, rj)
    np.testing.assert_allclose(gv, rv, rtol=0, atol=1e-6)
    if texts:
        assert [got.text(d) for d in got.ids] == [ref.text(d) for d in ref.ids]
    for q in qv:
        a, b = got.search(q, k=10), ref.search(q, k=10)
        assert [h[0] if isinstance(h, tuple) else h.id for h in a] == [
            h[0] if isinstance(h, tuple) else h.id for h in b
        ]


def test_from_parquet_equals_in_process_index(job):
    out, ref, ids, texts, e, qv, vecs = job
    got = SparseIndex.from_parquet(out)
    assert_same_index(got, ref, qv)
    assert got.vocab == e.vocab
    assert got.model["model_sha256"] == e.manifest.model_sha256
    assert len(got) == 150 and got.nnz == ref.nnz
    no_text = SparseIndex.from_parquet(out, store_texts=False, dtype="uint8", verify=True)
    assert no_text.text(ids[0]) is None and no_text.dtype == "uint8"


def test_index_from_vectors_cli_saves_the_same_index(job, tmp_path, capsys):
    out, ref, *_, qv, _ = job
    assert main(["index", "--from-vectors", str(out), "--out", str(tmp_path / "idx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["docs"] == 150
    assert_same_index(SparseIndex.load(str(tmp_path / "idx")), ref, qv)
    # errors: one line, exit 1
    assert main(["index", "--from-vectors", str(tmp_path / "nope"), "--out", str(tmp_path / "i2")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "nope" in err


def test_from_parquet_of_plain_parquet_files_and_damaged_shards(job, tmp_path):
    out, ref, ids, texts, e, qv, vecs = job
    plain = tmp_path / "spark-like"
    plain.mkdir()
    (plain / "_SUCCESS").write_text("")
    for k, name in enumerate(sorted(p.name for p in out.glob("part-*.parquet"))):
        t = pq.read_table(out / name).append_column("extra", pa.array([1] * pq.read_metadata(out / name).num_rows))
        pq.write_table(t, plain / f"part-{k:05d}-c000.snappy.parquet")
    with pytest.raises(ValueError, match="vocab_size"):
        SparseIndex.from_parquet(plain)
    got = SparseIndex.from_parquet(plain, vocab_size=e.vocab_size)
    assert_same_index(got, ref, qv)
    # a shard truncated after the job finished: named in the error
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    with open(broken / "part-00001.parquet", "r+b") as f:
        f.truncate(64)
    with pytest.raises(IndexFileError, match="part-00001.parquet"):
        SparseIndex.from_parquet(broken)
    # not a vectors file
    odd = tmp_path / "odd"
    odd.mkdir()
    pq.write_table(pa.table({"a": [1]}), odd / "x.parquet")
    with pytest.raises(IndexFileError, match="no column"):
        SparseIndex.from_parquet(odd, vocab_size=10)


def test_merge_equals_index_built_at_once(job):
    out, ref, ids, texts, e, qv, vecs = job
    parts = [
        SparseIndex.from_vectors(vecs[a:b], ids[a:b], vocab_size=e.vocab_size, vocab=e.vocab)
        for a, b in ((0, 40), (40, 41), (41, 150))
    ]
    parts[0].add([], [])  # an empty add changes nothing
    merged = SparseIndex.merge(parts)
    whole = SparseIndex.from_vectors(vecs, ids, vocab_size=e.vocab_size, vocab=e.vocab)
    assert_same_index(merged, whole, qv, texts=False)
    # an index built from shards merges with one built in process
    half = SparseIndex.from_parquet(out)
    half.remove(ids[75:])
    rest = SparseIndex.from_vectors(vecs[75:], ids[75:], vocab_size=e.vocab_size, vocab=e.vocab)
    assert_same_index(SparseIndex.merge([half, rest]), whole, qv, texts=False)


def test_merge_refuses_colliding_ids_and_other_vocabularies(job):
    _, _, ids, texts, e, _, vecs = job
    vecs = vecs[:20]
    a = SparseIndex.from_vectors(vecs[:12], ids[:12], vocab_size=e.vocab_size)
    b = SparseIndex.from_vectors(vecs[10:], ids[10:20], vocab_size=e.vocab_size)
    with pytest.raises(ValueError, match=f"document id '{ids[10]}' is in index 0 and index 1"):
        SparseIndex.merge([a, b])
    c = SparseIndex.from_vectors(vecs[12:], ids[12:20], vocab_size=e.vocab_size + 1)
    with pytest.raises(ValueError, match="vocab_size"):
        SparseIndex.merge([a, c])
    with pytest.raises(ValueError, match="at least one"):
        SparseIndex.merge([])


def test_merge_of_uint8_indexes_with_one_scale_is_exact(job):
    _, _, ids, texts, e, qv, vecs = job
    vecs = vecs[:60]
    whole = SparseIndex.from_vectors(vecs, ids[:60], vocab_size=e.vocab_size, dtype="uint8")
    a = SparseIndex(e.vocab_size, dtype="uint8")
    b = SparseIndex(e.vocab_size, dtype="uint8")
    a.scale = b.scale = whole.scale
    a.add(vecs[:30], ids[:30])
    b.add(vecs[30:], ids[30:60])
    merged = SparseIndex.merge([a, b])
    assert merged.scale == whole.scale
    assert_same_index(merged, whole, qv, texts=False)


def test_merge_saved_streams_to_disk_and_equals_merge(job, tmp_path):
    """merge_saved: saved indexes (one reordered, texts on one, one empty) merged through files equal the index
    built at once; blocks built over the merged postings give the exhaustive results; a reordered input keeps its
    order."""
    _, _, ids, texts, e, qv, vecs = job
    a = SparseIndex.from_vectors(vecs[:50], ids[:50], vocab_size=e.vocab_size, vocab=e.vocab)
    b = SparseIndex(e.vocab_size, vocab=e.vocab)
    b.add(vecs[50:120], ids[50:120], texts[50:120])
    b.reorder_documents()
    empty = SparseIndex(e.vocab_size, vocab=e.vocab)
    c = SparseIndex.from_vectors(vecs[120:], ids[120:], vocab_size=e.vocab_size, vocab=e.vocab)
    paths = []
    for j, ix in enumerate((a, b, empty, c)):
        paths.append(ix.save(tmp_path / f"part{j}"))
    out = SparseIndex.merge_saved(paths, tmp_path / "merged", block_size=16)
    got = SparseIndex.load(out, mmap=True, verify=True)
    want = SparseIndex.merge([a, b, empty, c])
    assert got.ids == want.ids and got.ids[50:120] == b.ids
    assert_same_index(got, want, qv, texts=True)
    assert got.block_size == 16 and got.pruning_nbytes > 0
    for q in qv:
        assert got.search(q, k=20) == got.search(q, k=20, exhaustive=True)
    assert not [f for f in (tmp_path / "merged").iterdir() if f.name.startswith(".tmp-")]


def test_merge_saved_uint8_and_refusals(job, tmp_path):
    _, _, ids, texts, e, qv, vecs = job
    whole = SparseIndex.from_vectors(vecs[:60], ids[:60], vocab_size=e.vocab_size, dtype="uint8")
    a = SparseIndex(e.vocab_size, dtype="uint8")
    b = SparseIndex(e.vocab_size, dtype="uint8")
    a.scale = b.scale = whole.scale
    a.add(vecs[:30], ids[:30])
    b.add(vecs[30:60], ids[30:60])
    pa_, pb = a.save(tmp_path / "a"), b.save(tmp_path / "b")
    got = SparseIndex.load(SparseIndex.merge_saved([pa_, pb], tmp_path / "m"))
    assert got.scale == whole.scale
    assert_same_index(got, whole, qv, texts=False)
    other = SparseIndex.from_vectors(vecs[30:60], ids[30:60], vocab_size=e.vocab_size, dtype="uint8")
    other.scale = whole.scale * 2
    with pytest.raises(ValueError, match="uint8 scale"):
        SparseIndex.merge_saved([pa_, other.save(tmp_path / "o")], tmp_path / "m2")
    f16 = SparseIndex.from_vectors(vecs[30:60], ids[30:60], vocab_size=e.vocab_size, dtype="float16")
    with pytest.raises(ValueError, match="stores float16 weights"):
        SparseIndex.merge_saved([pa_, f16.save(tmp_path / "f")], tmp_path / "m3")
    with pytest.raises(ValueError, match="is in index 0 and index 1"):
        SparseIndex.merge_saved([pa_, pa_], tmp_path / "m4")
    with pytest.raises(ValueError, match="at least one"):
        SparseIndex.merge_saved([], tmp_path / "m5")


def test_index_merge_cli(job, tmp_path, capsys):
    _, _, ids, texts, e, qv, vecs = job
    a = SparseIndex.from_vectors(vecs[:70], ids[:70], vocab_size=e.vocab_size, vocab=e.vocab).save(tmp_path / "a")
    b = SparseIndex.from_vectors(vecs[70:], ids[70:], vocab_size=e.vocab_size, vocab=e.vocab).save(tmp_path / "b")
    out = tmp_path / "m"
    assert main(["index", "--merge", a, b, "--out", str(out), "--blocks", "16", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["docs"] == 150 and info["blocks"] == 16 and info["merged"] == [a, b]
    whole = SparseIndex.from_vectors(vecs, ids, vocab_size=e.vocab_size, vocab=e.vocab)
    got = SparseIndex.load(out)
    assert got.block_size == 16
    assert_same_index(got, whole, qv, texts=False)
    # bad input: one line each, nothing written
    assert main(["index", "--merge", a, a, "--out", str(tmp_path / "m2")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "is in index 0 and index 1" in err
    assert main(["index", "--merge", a, str(tmp_path / "nope"), "--out", str(tmp_path / "m3")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "nope" in err
    assert main(["index", "--merge", a, b, "--reorder", "--blocks", "16", "--out", str(tmp_path / "m4")]) == 2
    assert "--reorder" in capsys.readouterr().err
    assert not (tmp_path / "m2").exists() or not any((tmp_path / "m2").iterdir())


def test_term_postings_round_trip_and_checks(job):
    _, _, ids, texts, e, qv, vecs = job
    src = SparseIndex.from_vectors(vecs[:40], ids[:40], vocab_size=e.vocab_size, dtype="uint8")
    src.remove(ids[3])
    indptr, docs, weights = src.term_postings()  # compacted: 39 documents
    assert docs.max() == 38 and weights.dtype == np.uint8
    again = SparseIndex.from_term_postings(
        indptr, docs, weights, src.ids, vocab_size=e.vocab_size, dtype="uint8", scale=src.scale
    )
    assert_same_index(again, src, qv, texts=False)
    with pytest.raises(ValueError, match="weights are uint8"):
        SparseIndex.from_term_postings(indptr, docs, weights, src.ids, vocab_size=e.vocab_size)
    with pytest.raises(ValueError, match="ordinals"):
        SparseIndex.from_term_postings(
            indptr, docs, weights, src.ids[:-1], vocab_size=e.vocab_size, dtype="uint8", scale=src.scale
        )
    with pytest.raises(ValueError, match="vocab_size"):
        SparseIndex.from_term_postings(indptr[:-1], docs, weights, src.ids, vocab_size=e.vocab_size)
    with pytest.raises(ValueError, match="duplicate"):
        SparseIndex.from_term_postings(
            indptr, docs, weights, [0] * 39, vocab_size=e.vocab_size, dtype="uint8", scale=src.scale
        )
    with pytest.raises(ValueError, match="scale"):
        SparseIndex.from_term_postings(indptr, docs, weights, src.ids, vocab_size=e.vocab_size, dtype="uint8")
