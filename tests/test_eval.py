"""`splade-onnx eval` on a dataset subset equals torch reference vectors searched by brute force."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from splade_onnx.evaluate import score_run
from splade_onnx.io.corpus import doc_text, load_beir, read_qrels

REPO = Path(__file__).resolve().parents[1]


def _subset(src: Path, dst: Path, n_docs: int) -> Path:
    """The first n_docs documents and the queries whose judged documents all fall among them."""
    corpus = [json.loads(x) for x in (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    corpus = corpus[:n_docs]
    keep = {d["_id"] for d in corpus}
    qrels = read_qrels(str(src / "qrels" / "test.tsv"))
    qids = {q for q, rel in qrels.items() if set(rel) <= keep}
    (dst / "qrels").mkdir(parents=True)
    (dst / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in corpus), "utf-8")
    queries = [json.loads(x) for x in (src / "queries.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    (dst / "queries.jsonl").write_text(
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries if q["_id"] in qids), "utf-8"
    )
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{r}" for q in sorted(qids) for d, r in qrels[q].items()]
    (dst / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", "utf-8")
    return dst


def test_doc_text_joins_title_and_text():
    assert doc_text({"title": "", "text": " body "}) == "body"
    assert doc_text({"title": "T", "text": "body"}) == "T body"


def test_eval_equals_torch_reference_brute_force(tiny_artifact, tiny_torch, datasets_dir, tmp_path):
    from splade_onnx_export.reference import splade_reference

    ds = _subset(datasets_dir / "belebele-ko", tmp_path / "ko", 40)
    data = load_beir(str(ds))
    assert 30 <= len(data.query_ids) <= 200
    run_file = tmp_path / "run.trec"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "splade_onnx",
            "eval",
            str(ds),
            "--model",
            tiny_artifact,
            "--doc-max-length",
            "256",
            "--query-max-length",
            "64",
            "--run-out",
            str(run_file),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=str(REPO),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ours = json.loads(r.stdout)
    assert ours["queries"] == len(data.query_ids) and ours["docs"] == 40

    model, tok = tiny_torch
    D = splade_reference(model, tok, data.doc_texts, max_length=256)
    Q = splade_reference(model, tok, data.query_texts, max_length=64)
    S = Q.astype(np.float64) @ D.astype(np.float64).T
    run = {}
    for qid, s in zip(data.query_ids, S):
        order = [j for j in np.lexsort((np.arange(len(s)), -s)) if s[j] > 0][:100]
        run[qid] = [(data.doc_ids[j], float(s[j])) for j in order]
    ref = score_run(data.qrels, run)
    for m in ("nDCG@10", "RR@10", "R@100"):
        assert ours["metrics"][m] == pytest.approx(ref[m], abs=1e-9), (m, ours["metrics"], ref)
    assert 0.1 < ref["nDCG@10"] <= 1.0  # a real (if hard: splade-tiny is English) task, not a degenerate one
    # the TREC run holds the same rankings as the reference
    lines = run_file.read_text().splitlines()
    first = [ln.split() for ln in lines if ln.split()[0] == data.query_ids[0]]
    assert [x[2] for x in first][:10] == [d for d, _ in run[data.query_ids[0]]][:10]
    assert [int(x[3]) for x in first] == list(range(1, len(first) + 1))
