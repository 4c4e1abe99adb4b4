"""Lucene (through Anserini) against SparseIndex on the same quantised SPLADE vectors: top-10 agreement on SciFact.

    nice -n 10 .venv/bin/python benchmarks/anserini_agreement.py [--model artifacts/splade-tiny] [--scale 100]

1. Encodes every SciFact document (5,183) and the 300 test queries with the artifact (cached under
   ``.cache/anserini-agreement/``, keyed by the artifact's manifest sha256 and the corpus file's size and mtime).
2. Quantises both sides to integer impacts ``round(w * scale)`` (``splade_onnx.io.payloads.quantize``).
3. Writes the documents as a ``JsonVectorCollection`` and the queries as pre-encoded ``TsvString`` topics, indexes and
   searches them with Anserini's ``IndexCollection`` / ``SearchCollection`` ``-impact -pretokenized`` (real Lucene).
4. Builds a ``SparseIndex`` from the same integer impacts and searches it with the same integer query weights, so both
   scores are exact integer dot products, and compares the top 10 of every query, ties aside
   (:func:`splade_onnx.engines.anserini.compare_top_k`).

Writes ``benchmarks/results/anserini.json`` (figures) and ``benchmarks/results/anserini.md`` (a table).
Needs Java 21+ (``SPLADE_ONNX_JAVA`` / ``JAVA_HOME`` / ``/usr/lib/jvm/*``) and the Anserini fat jar
(``scripts/setup.sh`` puts it in ``.cache/anserini/``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SPLADE_ONNX_DATASETS", REPO.parent / "shared" / "datasets"))
CACHE = Path(os.environ.get("SPLADE_ONNX_CACHE", REPO / ".cache")) / "anserini-agreement"
RESULTS = REPO / "benchmarks" / "results"


def _csr(vectors: List[Any]) -> Dict[str, np.ndarray]:
    indptr = np.zeros(len(vectors) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(v) for v in vectors])
    indices = np.concatenate([v.indices for v in vectors]) if vectors else np.zeros(0, np.int32)
    values = np.concatenate([v.values for v in vectors]) if vectors else np.zeros(0, np.float32)
    return {"indptr": indptr, "indices": indices.astype(np.int32), "values": values.astype(np.float32)}


def _vectors(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> List[Any]:
    from splade_onnx import SparseVector

    return [
        SparseVector(indices[indptr[i] : indptr[i + 1]], values[indptr[i] : indptr[i + 1]])
        for i in range(len(indptr) - 1)
    ]


def _shown(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(path)


def encode_scifact(model: str, dataset: Path) -> Tuple[List[str], List[Any], List[str], List[Any], Dict[str, Any]]:
    """Document and test-query vectors of SciFact, from the cache when the artifact and the corpus are unchanged."""
    from splade_onnx import Expander
    from splade_onnx.io.corpus import read_corpus, read_qrels

    manifest_sha = hashlib.sha256((Path(model) / "splade_onnx.json").read_bytes()).hexdigest()[:16]
    st = (dataset / "corpus.jsonl").stat()
    key = f"{dataset.name}-{manifest_sha}-{st.st_size}-{int(st.st_mtime)}"
    path = CACHE / f"{key}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        doc_ids = [str(x) for x in z["doc_ids"]]
        q_ids = [str(x) for x in z["q_ids"]]
        info = json.loads(str(z["info"]))
        info["model"] = _shown(model)
        info.pop("encode_docs_s", None)  # older caches timed the encoding on a shared machine: not a figure
        return (
            doc_ids,
            _vectors(z["d_indptr"], z["d_indices"], z["d_values"]),
            q_ids,
            _vectors(z["q_indptr"], z["q_indices"], z["q_values"]),
            info,
        )
    doc_ids, texts = read_corpus(dataset / "corpus.jsonl")
    qrels = read_qrels(dataset / "qrels" / "test.tsv")
    queries = {str(r["_id"]): r["text"] for r in map(json.loads, open(dataset / "queries.jsonl", encoding="utf-8"))}
    q_ids = [q for q in queries if q in qrels]
    expander = Expander(model)
    # most abstracts pass the manifest's 256-token document length: truncated as in every other SciFact figure
    warnings.filterwarnings("ignore", message=r".*exceed max_length", category=UserWarning)
    dvecs = list(
        expander.expand_iter(
            texts, chunk_size=256, progress=sys.stderr.isatty(), max_length=expander.manifest.max_length["document"]
        )
    )
    qvecs = expander.encode_queries([queries[q] for q in q_ids])
    info = {
        "model": _shown(model),
        "manifest_sha256_16": manifest_sha,
        "documents": len(doc_ids),
        "queries": len(q_ids),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    d, q = _csr(dvecs), _csr(qvecs)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        doc_ids=np.array([str(i) for i in doc_ids]),
        q_ids=np.array(q_ids),
        info=json.dumps(info),
        d_indptr=d["indptr"],
        d_indices=d["indices"],
        d_values=d["values"],
        q_indptr=q["indptr"],
        q_indices=q["indices"],
        q_values=q["values"],
    )
    os.replace(tmp, path)
    return [str(i) for i in doc_ids], dvecs, q_ids, qvecs, info


def run(model: str, dataset: Path, scale: float, k: int, workdir: Path) -> Dict[str, Any]:
    from splade_onnx import Expander
    from splade_onnx.engines import anserini

    doc_ids, dvecs, q_ids, qvecs, info = encode_scifact(model, dataset)
    vocab = Expander(model).vocab
    java = anserini.find_java()
    jar = anserini.find_jar()
    t0 = time.perf_counter()
    coll = anserini.write_collection(workdir / "collection", doc_ids, dvecs, vocab, scale=scale)
    topics = anserini.write_topics(workdir / "topics.tsv", q_ids, qvecs, vocab, scale=scale)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    anserini.index(coll.directory, workdir / "index", java=java, jar=jar)
    t_index = time.perf_counter() - t0
    t0 = time.perf_counter()
    lucene = anserini.search(workdir / "index", topics.path, workdir / "run.txt", k=k, java=java, jar=jar)
    t_search = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = anserini.reference_index(doc_ids, dvecs, len(vocab), scale=scale)
    qq = [anserini.quantized_vector(v, scale) for v in qvecs]
    ref = {qid: hits for qid, hits in zip(q_ids, ours.search(qq, k=k), strict=True)}
    t_ref = time.perf_counter() - t0
    cmp = anserini.compare_top_k(lucene, ref, k=k, index=ours, queries=dict(zip(q_ids, qq, strict=True)))
    return {
        "dataset": dataset.name,
        "k": k,
        "scale": scale,
        **info,
        "documents_written": coll.count,
        "documents_empty_after_quantisation": coll.empty,
        "queries_written": topics.count,
        "queries_empty_after_quantisation": topics.empty,
        "java": anserini.java_version(java),
        "jar": Path(jar).name,
        "seconds": {
            "write": round(t_write, 2),
            "lucene_index": round(t_index, 1),
            "lucene_search": round(t_search, 1),
            "sparse_index_build_and_search": round(t_ref, 2),
        },
        **cmp.summary(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def to_markdown(r: Dict[str, Any]) -> str:
    rows = [
        ("dataset", f"{r['dataset']} ({r['documents']} documents, {r['queries']} test queries)"),
        ("model", f"{Path(r['model']).name} (manifest sha256 {r['manifest_sha256_16']}...)"),
        ("quantisation", f"round(w * {r['scale']:g}), documents and queries"),
        ("Lucene", f"{r['jar']}, {r['java']}"),
        (
            f"queries with the same top {r['k']}, ties aside",
            f"{r['queries_equal']} / {r['queries_compared']} ({100.0 * r['agreement']:.1f}%)",
        ),
        ("  of which identical order and ids", f"{r['queries_identical']}"),
        ("  of which differ only inside a score tie", f"{r['queries_equal'] - r['queries_identical']}"),
        ("queries with a score tie inside the top 10", f"{r['queries_with_ties_in_top_k']}"),
        ("queries whose tie at rank 10 was cut differently", f"{r['queries_with_a_tie_across_rank_k']}"),
        ("largest score (Lucene float32 is exact below 2^24)", f"{r['max_score']:.0f}"),
        ("queries that disagree", f"{len(r['disagreements'])}"),
        (
            "Lucene index / search (s, JVM start included)",
            f"{r['seconds']['lucene_index']} / {r['seconds']['lucene_search']}",
        ),
    ]
    for t in r.get("ties_cut_differently_at_rank_k", []):
        rows.append(
            (
                f"  query {t['qid']}: documents of score {t['score']:.0f} at rank {r['k']}",
                f"Lucene keeps {', '.join(t['engine'])}, SparseIndex {', '.join(t['ours'])} (both have that score)",
            )
        )
    out = ["| measure | value |", "| --- | --- |"] + [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(out) + "\n"


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "artifacts" / "splade-tiny"))
    ap.add_argument("--dataset", default=str(DATASETS / "scifact"))
    ap.add_argument("--scale", type=float, default=100.0)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--encode-only", action="store_true", help="fill the vector cache and stop")
    ap.add_argument("--out", default=str(RESULTS / "anserini"), help="writes OUT.json and OUT.md")
    a = ap.parse_args(argv)
    if a.encode_only:
        info = encode_scifact(a.model, Path(a.dataset))[4]
        print(json.dumps(info))
        return 0
    with tempfile.TemporaryDirectory(prefix="anserini-agreement-") as tmp:
        r = run(a.model, Path(a.dataset), a.scale, a.k, Path(tmp))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")
    Path(a.out + ".md").write_text(to_markdown(r), encoding="utf-8")
    print(to_markdown(r))
    return 0 if r["queries_equal"] == r["queries_compared"] else 1


if __name__ == "__main__":
    sys.exit(main())
