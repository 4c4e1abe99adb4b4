"""Ray Data integration against a real local Ray (2 CPUs, an actor pool of 2): the same vectors as a single-process
expand, an actor killed (SIGKILL) mid-job, and the encode job on Ray."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra (ray[data]) is not installed")
pytest.importorskip("ray.data", reason="the [ray] extra needs ray[data]")
psutil = pytest.importorskip("psutil", reason="psutil finds the actor processes to kill")

from splade_onnx import Expander  # noqa: E402
from splade_onnx.engines.ray import add_splade_columns  # noqa: E402
from splade_onnx.errors import MissingExtraError  # noqa: E402
from splade_onnx.io.corpus import read_corpus  # noqa: E402

MAXLEN = 128
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def docs(datasets_dir, tmp_path_factory):
    with open(datasets_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()][:200]
    corpus = tmp_path_factory.mktemp("ray") / "c.jsonl"
    corpus.write_text("".join(lines), encoding="utf-8")
    ids, texts = read_corpus(corpus)
    return corpus, [str(i) for i in ids], texts


@pytest.fixture(scope="module")
def reference(docs, tiny_artifact):
    return Expander(tiny_artifact).encode_documents(docs[2], max_length=MAXLEN)


def check_rows(got_ids, ind, val, ids, ref) -> None:
    assert sorted(got_ids) == sorted(ids) and len(set(got_ids)) == len(ids)
    pos = {d: k for k, d in enumerate(ids)}
    for d, i, v in zip(got_ids, ind, val, strict=True):
        r = ref[pos[d]]
        np.testing.assert_array_equal(np.asarray(i, np.int32), r.indices)
        np.testing.assert_allclose(np.asarray(v, np.float32), r.values, rtol=0, atol=1e-6)


def test_ray_columns_equal_single_process_expand(ray_local, docs, reference, tiny_artifact):
    import pyarrow as pa

    _, ids, texts = docs
    rows = [{"id": d, "text": t} for d, t in zip(ids, texts, strict=True)]
    ds = ray_local.data.from_items(rows, override_num_blocks=8)
    out = add_splade_columns(ds, tiny_artifact, max_length=MAXLEN, concurrency=2, map_batch_size=25, tokens=True)
    table = pa.concat_tables(ray_local.get(out.to_arrow_refs()))
    assert table.schema.field("indices").type == pa.list_(pa.int32())
    assert table.schema.field("values").type == pa.list_(pa.float32())
    assert table.schema.field("tokens").type == pa.list_(pa.string())
    check_rows(
        table.column("id").to_pylist(),
        table.column("indices").to_pylist(),
        table.column("values").to_pylist(),
        ids,
        reference,
    )
    vocab = Expander(tiny_artifact).vocab
    for i, toks in zip(table.column("indices").to_pylist()[:20], table.column("tokens").to_pylist()[:20], strict=True):
        assert toks == [vocab[j] for j in i]


def _encoder_actor_pids():
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cl = " ".join(p.info["cmdline"] or [])
        if cl.startswith("ray::MapWorker(MapBatches(SpladeEncoder))"):
            out.append(p.info["pid"])
    return out


def test_ray_actor_killed_mid_job_every_id_once(ray_local, docs, reference, tiny_artifact):
    _, ids, texts = docs
    ids, texts, reference = ids[:120], texts[:120], reference[:120]
    rows = [{"id": d, "text": t} for d, t in zip(ids, texts, strict=True)]
    ds = ray_local.data.from_items(rows, override_num_blocks=8)
    out = add_splade_columns(ds, tiny_artifact, max_length=MAXLEN, concurrency=2, map_batch_size=15)
    got_ids, ind, val = [], [], []
    killed = None
    for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
        got_ids += batch.column("id").to_pylist()
        ind += batch.column("indices").to_pylist()
        val += batch.column("values").to_pylist()
        if killed is None:
            pids = _encoder_actor_pids()
            assert pids, "no SpladeEncoder actor process found"
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
            rows_at_kill = len(got_ids)
    assert killed is not None and rows_at_kill < len(ids)  # the kill happened with work left
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    check_rows(got_ids, ind, val, ids, reference)


def test_encode_job_on_ray_equals_local_expand(ray_local, docs, reference, tiny_artifact, tmp_path):
    from splade_onnx.io.parquet import read_shard
    from splade_onnx.jobs.encode import run_encode_job

    corpus, ids, _ = docs
    r = run_encode_job(corpus, tiny_artifact, tmp_path / "r", engine="ray", shard_size=64, max_length=MAXLEN)
    assert (r.documents, r.shards, r.shards_encoded) == (len(ids), 4, 4)
    man = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert man["engine"] == "ray" and man["complete"]
    got_ids = []
    for k, e in enumerate(man["shards"]):
        sh = read_shard(str(tmp_path / "r" / e["name"]))
        got_ids.extend(sh.ids)
        for j in range(len(sh.ids)):
            a, b = sh.indptr[j], sh.indptr[j + 1]
            np.testing.assert_array_equal(sh.indices[a:b], reference[64 * k + j].indices)
            np.testing.assert_allclose(sh.values[a:b], reference[64 * k + j].values, rtol=0, atol=1e-6)
    assert got_ids == ids
    assert ray_local.is_initialized()  # the job used the running Ray and left it running


def test_missing_ray_raises_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"splade-onnx\[ray\]"):
        add_splade_columns(None, "unused")  # type: ignore[arg-type]
