"""The resumable corpus job (`splade-onnx encode`, engine local): shards, manifest, resume after SIGKILL, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the [parquet] extra (pyarrow) is not installed")

from splade_onnx import Expander  # noqa: E402
from splade_onnx.artifact.manifest import sha256_file  # noqa: E402
from splade_onnx.cli import main  # noqa: E402
from splade_onnx.io.corpus import read_corpus  # noqa: E402
from splade_onnx.io.parquet import read_shard  # noqa: E402
from splade_onnx.jobs.encode import run_encode_job  # noqa: E402

MAXLEN = 128  # shorter than the default 256: the same code path, half the encoding time


def write_corpus(datasets_dir: Path, dest: Path, n: int, skip: int = 0) -> Path:
    with open(datasets_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip()][skip : skip + n]
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


def read_job(out: Path):
    """Every row of a job's shards, in manifest order: (ids, vectors as (indices, values))."""
    man = json.loads((out / "manifest.json").read_text())
    ids, vecs = [], []
    for e in man["shards"]:
        sh = read_shard(str(out / e["name"]))
        ids.extend(sh.ids)
        for j in range(len(sh.ids)):
            a, b = sh.indptr[j], sh.indptr[j + 1]
            vecs.append((sh.indices[a:b], sh.values[a:b]))
    return man, ids, vecs


def assert_same_vectors(got, ref) -> None:
    assert len(got) == len(ref)
    for (gi, gv), r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(gi, r.indices)
        np.testing.assert_allclose(gv, r.values, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def corpus(datasets_dir, tmp_path_factory) -> Path:
    return write_corpus(datasets_dir, tmp_path_factory.mktemp("corpus") / "scifact120.jsonl", 120)


@pytest.fixture(scope="module")
def reference(tiny_artifact, corpus):
    ids, texts = read_corpus(corpus)
    return ids, texts, Expander(tiny_artifact).encode_documents(texts, max_length=MAXLEN)


def test_local_job_shards_manifest_and_vectors(tiny_artifact, corpus, reference, tmp_path):
    ids, texts, ref = reference
    out = tmp_path / "vec"
    r = run_encode_job(corpus, tiny_artifact, out, shard_size=50, max_length=MAXLEN, store_text=True, workers=2)
    assert (r.documents, r.shards, r.shards_encoded, r.shards_kept) == (120, 3, 3, 0)
    man, got_ids, got = read_job(out)
    assert got_ids == ids and len(set(got_ids)) == 120
    assert_same_vectors(got, ref)
    art = json.loads((Path(tiny_artifact) / "splade_onnx.json").read_text())
    assert man["job"]["model_sha256"] == art["model_sha256"]
    assert man["model"]["manifest_sha256"] == sha256_file(os.path.join(tiny_artifact, "splade_onnx.json"))
    assert man["complete"] and man["documents_written"] == 120 and man["job"]["documents"] == 120
    assert [e["documents"] for e in man["shards"]] == [50, 50, 20]
    for k, e in enumerate(man["shards"]):
        assert sha256_file(str(out / e["name"])) == e["sha256"]
        assert e["nnz"] == sum(len(v.indices) for v in ref[50 * k : 50 * (k + 1)])
        assert (e["first_id"], e["last_id"]) == (ids[50 * k], ids[min(50 * k + 49, 119)])
    assert read_shard(str(out / "part-00002.parquet")).texts == texts[100:]
    assert json.loads((out / "vocab.json").read_text()) == Expander(tiny_artifact).vocab
    # a rerun of a finished job encodes nothing
    r2 = run_encode_job(corpus, tiny_artifact, out, shard_size=50, max_length=MAXLEN, store_text=True, workers=2)
    assert (r2.shards_encoded, r2.shards_kept) == (0, 3)


def test_query_role_and_pruning_match_expand(tiny_artifact, corpus, reference, tmp_path):
    ids, texts, _ = reference
    e = Expander(tiny_artifact)
    out = tmp_path / "q"
    run_encode_job(corpus, tiny_artifact, out, shard_size=80, role="query", prune="top_k=20", workers=1)
    _, got_ids, got = read_job(out)
    assert got_ids == ids
    assert_same_vectors(got, e.encode_queries(texts, prune=("top_k", 20)))
    assert all(len(i) <= 20 for i, _ in got)


def test_resume_after_sigkill_redoes_only_unfinished_shards(tiny_artifact, corpus, reference, tmp_path):
    ids, _, ref = reference
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "splade_onnx",
        "encode",
        str(corpus),
        "--model",
        tiny_artifact,
        "--out",
        str(out),
        "--shard-size",
        "10",
        "--max-length",
        str(MAXLEN),
        "--workers",
        "1",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    man_path = out / "manifest.json"
    done: list = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if man_path.is_file():
            done = [e for e in json.loads(man_path.read_text())["shards"] if e is not None]
            if len(done) >= 3:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed: " + proc.stderr.read().decode()[-500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    man = json.loads(man_path.read_text())
    recorded = [e for e in man["shards"] if e is not None]
    assert 3 <= len(recorded) < 12 and not man["complete"]
    stamps = {e["name"]: os.stat(out / e["name"]).st_mtime_ns for e in recorded}
    # an unfinished job is refused as an index source
    assert main(["index", "--from-vectors", str(out), "--out", str(tmp_path / "idx")]) == 1
    # damage one recorded shard: the rerun must notice and redo it
    damaged = recorded[0]["name"]
    with open(out / damaged, "r+b") as f:
        f.truncate(100)
    r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["shards_kept"] == len(recorded) - 1
    assert info["shards_encoded"] == 12 - len(recorded) + 1
    for name, ns in stamps.items():
        if name != damaged:
            assert os.stat(out / name).st_mtime_ns == ns, f"{name} was rewritten"
    man2, got_ids, got = read_job(out)
    assert man2["complete"] and got_ids == ids and len(set(got_ids)) == len(ids)
    assert_same_vectors(got, ref)
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_bad_inputs_are_one_line_errors(tiny_artifact, corpus, tmp_path, capsys):
    dup = tmp_path / "dup.jsonl"
    lines = corpus.read_text().splitlines(keepends=True)
    dup.write_text("".join(lines[:5] + [lines[2]]))
    first_id = json.loads(lines[2])["_id"]
    assert main(["encode", str(dup), "--model", tiny_artifact, "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "duplicate document id" in err and first_id in err and "documents 3 and 6" in err
    assert not (tmp_path / "d" / "manifest.json").exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "{not json\n")
    assert main(["encode", str(bad), "--model", tiny_artifact, "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{bad}:2" in err and "not valid JSON" in err

    assert (
        main(["encode", str(tmp_path / "missing.jsonl"), "--model", tiny_artifact, "--out", str(tmp_path / "m")]) == 1
    )
    assert "file not found" in capsys.readouterr().err


def test_other_job_in_out_is_refused_unless_overwrite(tiny_artifact, datasets_dir, tmp_path, capsys):
    small = write_corpus(datasets_dir, tmp_path / "c12.jsonl", 12)
    out = tmp_path / "o"
    args = [
        "encode",
        str(small),
        "--model",
        tiny_artifact,
        "--out",
        str(out),
        "--shard-size",
        "5",
        "--max-length",
        "64",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args[:-4] + ["--shard-size", "6", "--max-length", "64"]) == 1
    err = capsys.readouterr().err
    assert "different job" in err and "shard_size" in err
    assert main(args[:-4] + ["--shard-size", "6", "--max-length", "64", "--overwrite", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shards"] == 2 and sorted(f for f in os.listdir(out) if f.endswith(".parquet")) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_int_ids_of_a_plain_text_corpus_stay_ints(tiny_artifact, tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("first document about cells\n\nsecond one about proteins\nthird on genes\n")
    out = tmp_path / "o"
    run_encode_job(txt, tiny_artifact, out, shard_size=2, workers=1)
    _, ids, _ = read_job(out)
    assert ids == [1, 3, 4]
