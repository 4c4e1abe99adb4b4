"""SciFact nDCG@10 of an fp32 and an int8 artifact: the quality cost of int8, recorded in the int8 manifest.

    python benchmarks/quality.py FP32_ARTIFACT INT8_ARTIFACT [--threads 2]

Docs at 256 tokens, queries at 64, exact search (sparse dot product with scipy), nDCG@10 with ir-measures on the
SciFact test qrels. The result is written into the int8 artifact's manifest (``quantization["scifact"]``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

DATASETS = os.environ.get(
    "SPLADE_ONNX_DATASETS",
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "datasets"),
)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _matrix(vecs, vocab):
    import numpy as np
    import scipy.sparse as sp

    indptr = np.cumsum([0] + [len(v.indices) for v in vecs])
    ind = np.concatenate([v.indices for v in vecs]) if vecs else np.zeros(0, np.int64)
    val = np.concatenate([v.values for v in vecs]) if vecs else np.zeros(0, np.float32)
    return sp.csr_matrix((val, ind, indptr), shape=(len(vecs), vocab))


def ndcg10(artifact: str, threads: int = 2) -> dict:
    import warnings

    import ir_measures
    import numpy as np
    from ir_measures import nDCG

    from splade_onnx import Expander

    warnings.simplefilter("ignore")
    root = os.path.join(DATASETS, "scifact")
    corpus = _read(os.path.join(root, "corpus.jsonl"))
    queries = {q["_id"]: q["text"] for q in _read(os.path.join(root, "queries.jsonl"))}
    qrels = []
    with open(os.path.join(root, "qrels", "test.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, rel = line.rstrip("\n").split("\t")[:3]
            qrels.append(ir_measures.Qrel(qid, did, int(rel)))
    qids = sorted({q.query_id for q in qrels})
    e = Expander(artifact, threads=threads)
    t = time.perf_counter()
    D = _matrix(
        e.encode_documents([(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus], max_length=256),
        e.vocab_size,
    )
    Q = _matrix(e.encode_queries([queries[q] for q in qids], max_length=64), e.vocab_size)
    enc_s = time.perf_counter() - t
    S = (Q @ D.T).toarray()
    run = []
    for i, qid in enumerate(qids):
        top = np.argsort(-S[i], kind="stable")[:100]
        run += [ir_measures.ScoredDoc(qid, corpus[j]["_id"], float(S[i, j])) for j in top]
    score = ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]
    return {"ndcg@10": float(score), "docs": len(corpus), "queries": len(qids), "encode_s": enc_s}


def scifact_quality(fp32: str, int8: str, threads: int = 2, exact: str | None = None) -> dict:
    """nDCG@10 of the fp32 and int8 artifacts (and an int8-exact one if given); each quantised manifest gets its own
    figures and loss against fp32."""
    from splade_onnx.artifact.manifest import Manifest

    a = ndcg10(fp32, threads)
    out = {
        "dataset": "BEIR SciFact test (5183 docs, 300 queries), docs 256 / queries 64 tokens, exact search",
        "ndcg@10": {"fp32": a["ndcg@10"]},
        "encode_s": {"fp32": a["encode_s"]},
    }
    for key, art, loss_key in (("int8", int8, "loss"), ("int8-exact", exact, "loss_exact")):
        if art is None:
            continue
        b = ndcg10(art, threads)
        out["ndcg@10"][key] = b["ndcg@10"]
        out["encode_s"][key] = b["encode_s"]
        out[loss_key] = a["ndcg@10"] - b["ndcg@10"]
        m = Manifest.read(art)
        if m.quantization is not None:
            m.quantization["scifact"] = {
                "dataset": out["dataset"],
                "ndcg@10": {"fp32": a["ndcg@10"], key: b["ndcg@10"]},
                "loss": out[loss_key],
            }
            m.write(art)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32")
    ap.add_argument("int8")
    ap.add_argument("--exact", default=None, help="an int8-exact artifact to score as well")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    print(json.dumps(scifact_quality(a.fp32, a.int8, a.threads, exact=a.exact), indent=2))
    sys.exit(0)
