"""Spark integration against a real local Spark (local[2], task retries on): the same vectors as a single-process
expand, a task whose Python worker is killed on its first attempt, and the encode job on Spark."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pyspark = pytest.importorskip("pyspark", reason="the [spark] extra (pyspark) is not installed")
pytest.importorskip("pyarrow", reason="the [spark] extra needs pyarrow")

from splade_onnx import Expander  # noqa: E402
from splade_onnx.engines.spark import add_splade_columns  # noqa: E402
from splade_onnx.errors import MissingExtraError  # noqa: E402
from splade_onnx.io.corpus import read_corpus  # noqa: E402

MAXLEN = 128
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    import shutil

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs a Java runtime (java 17) on PATH or JAVA_HOME")
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2,4]")
        .appName("splade-onnx tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def docs(datasets_dir, tmp_path_factory):
    with open(datasets_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()][:200]
    corpus = tmp_path_factory.mktemp("spark") / "c.jsonl"
    corpus.write_text("".join(lines), encoding="utf-8")
    ids, texts = read_corpus(corpus)
    return corpus, [str(i) for i in ids], texts


def check_rows(table, ids, ref) -> None:
    """Every id exactly once, each row's vector equal to the reference (same indices, values within 1e-6)."""
    got_ids = table.column("id").to_pylist()
    assert sorted(got_ids) == sorted(ids) and len(set(got_ids)) == len(ids)
    pos = {d: k for k, d in enumerate(ids)}
    ind, val = table.column("indices").to_pylist(), table.column("values").to_pylist()
    for d, i, v in zip(got_ids, ind, val, strict=True):
        r = ref[pos[d]]
        np.testing.assert_array_equal(np.asarray(i, np.int32), r.indices)
        np.testing.assert_allclose(np.asarray(v, np.float32), r.values, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def reference(docs, tiny_artifact):
    return Expander(tiny_artifact).encode_documents(docs[2], max_length=MAXLEN)


def test_spark_columns_equal_single_process_expand(spark, docs, reference, tiny_artifact):
    _, ids, texts = docs
    e = Expander(tiny_artifact)
    ref = reference
    df = spark.createDataFrame(list(zip(ids, texts, strict=True)), "id string, text string").repartition(2)
    out = add_splade_columns(df, tiny_artifact, max_length=MAXLEN, tokens=True)
    assert [f.name for f in out.schema.fields] == ["id", "text", "indices", "values", "tokens"]
    assert out.schema["indices"].dataType.simpleString() == "array<int>"
    assert out.schema["values"].dataType.simpleString() == "array<float>"
    table = out.toArrow()
    check_rows(table, ids, ref)
    vocab = e.vocab
    for i, toks in zip(table.column("indices").to_pylist()[:20], table.column("tokens").to_pylist()[:20], strict=True):
        assert toks == [vocab[j] for j in i]
    # query role and pruning
    qdf = spark.createDataFrame(list(zip(ids[:40], texts[:40], strict=True)), "id string, q string")
    q = add_splade_columns(qdf, tiny_artifact, text_col="q", role="query", prune="top_k=16").toArrow()
    check_rows(q, ids[:40], e.encode_queries(texts[:40], prune=("top_k", 16)))


def test_spark_task_killed_once_is_retried_and_every_id_is_there_once(spark, docs, reference, tiny_artifact, tmp_path):
    _, ids, texts = docs
    ids, texts, ref = ids[:120], texts[:120], reference[:120]
    marker = str(tmp_path / "attempts")
    os.makedirs(marker)

    def crash_first_attempt(batches):  # defined here so that Spark ships it by value
        import os as _os
        import signal as _signal

        from pyspark import TaskContext

        ctx = TaskContext.get()
        with open(_os.path.join(marker, f"p{ctx.partitionId()}-a{ctx.attemptNumber()}"), "w"):
            pass
        for k, b in enumerate(batches):
            if ctx.partitionId() == 1 and ctx.attemptNumber() == 0 and k == 0:
                _os.kill(_os.getpid(), _signal.SIGKILL)  # the Python worker dies mid-task
            yield b

    df = spark.createDataFrame(list(zip(ids, texts, strict=True)), "id string, text string").repartition(2)
    df = df.mapInArrow(crash_first_attempt, df.schema)
    table = add_splade_columns(df, tiny_artifact, max_length=MAXLEN).select("id", "indices", "values").toArrow()
    attempts = sorted(os.listdir(marker))
    assert "p1-a0" in attempts and "p1-a1" in attempts, attempts  # the kill happened and the task was re-run
    check_rows(table, ids, ref)


def test_encode_job_on_spark_equals_local_job(spark, docs, reference, tiny_artifact, tmp_path):
    from splade_onnx.io.parquet import read_shard
    from splade_onnx.jobs.encode import run_encode_job

    corpus, ids, texts = docs
    r = run_encode_job(corpus, tiny_artifact, tmp_path / "s", engine="spark", shard_size=64, max_length=MAXLEN)
    assert (r.documents, r.shards, r.shards_encoded) == (len(ids), 4, 4)
    man = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert man["engine"] == "spark" and man["complete"]
    ref = reference
    got_ids = []
    for k, e in enumerate(man["shards"]):
        sh = read_shard(str(tmp_path / "s" / e["name"]))
        got_ids.extend(sh.ids)
        for j in range(len(sh.ids)):
            a, b = sh.indptr[j], sh.indptr[j + 1]
            np.testing.assert_array_equal(sh.indices[a:b], ref[64 * k + j].indices)
            np.testing.assert_allclose(sh.values[a:b], ref[64 * k + j].values, rtol=0, atol=1e-6)
    assert got_ids == ids
    assert spark.range(3).count() == 3  # the job used the active session and did not stop it


def test_missing_pyspark_raises_missing_extra(monkeypatch, spark):
    df = spark.createDataFrame([("1", "a")], "id string, text string")
    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingExtraError, match=r"splade-onnx\[spark\]"):
        add_splade_columns(df, "unused")
