"""Retrieval evaluation on a BEIR-layout folder: encode, index, search, score with ir-measures.

Needs the ``eval`` extra (``ir-measures``, ``tqdm``), imported lazily.
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from splade_onnx.errors import SpladeOnnxError

log = logging.getLogger("splade_onnx")

MEASURES = ("nDCG@10", "RR@10", "R@100")


@dataclass
class BeirData:
    doc_ids: List[str]
    doc_texts: List[str]
    query_ids: List[str]
    query_texts: List[str]
    qrels: Dict[str, Dict[str, int]]


@dataclass
class EvalResult:
    dataset: str
    split: str
    docs: int
    queries: int
    metrics: Dict[str, float]
    encode_docs_s: float
    encode_queries_s: float
    index_s: float
    search_s: float
    settings: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def doc_text(d: Dict[str, Any]) -> str:
    """BEIR document text: ``title + " " + text``, stripped."""
    return (str(d.get("title") or "") + " " + str(d.get("text") or "")).strip()


def _read_jsonl(path: str) -> List[Dict[str, Any]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise SpladeOnnxError(f"{path}:{n}: not valid JSON ({e})") from e
    return out


def read_qrels(path: str) -> Dict[str, Dict[str, int]]:
    """``qrels/<split>.tsv`` (``query-id corpus-id score``, header optional) -> ``{qid: {docid: rel}}``."""
    qrels: Dict[str, Dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if n == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise SpladeOnnxError(f"{path}:{n}: expected 3 tab-separated fields, got {len(parts)}")
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def load_beir(dataset_dir: str, split: str = "test") -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``; keeps the queries judged in the split."""
    paths = {n: os.path.join(dataset_dir, n) for n in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p} not found: DATASET_DIR must hold corpus.jsonl, queries.jsonl, qrels/{split}.tsv")
    corpus = _read_jsonl(paths["corpus.jsonl"])
    qrels = read_qrels(paths[f"qrels/{split}.tsv"])
    queries = [q for q in _read_jsonl(paths["queries.jsonl"]) if str(q["_id"]) in qrels]
    missing = set(qrels) - {str(q["_id"]) for q in queries}
    if missing:
        log.warning("%d judged query id(s) have no text in queries.jsonl (e.g. %s); they score 0",
                    len(missing), sorted(missing)[0])
    return BeirData(
        doc_ids=[str(d["_id"]) for d in corpus], doc_texts=[doc_text(d) for d in corpus],
        query_ids=[str(q["_id"]) for q in queries], query_texts=[str(q["text"]) for q in queries], qrels=qrels,
    )


def write_trec_run(run: Dict[str, List[Tuple[str, float]]], path: str, tag: str = "splade-onnx") -> None:
    """TREC run format: ``qid Q0 docid rank score tag``."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for qid, hits in run.items():
            for rank, (did, score) in enumerate(hits, 1):
                f.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
    os.replace(tmp, path)


def score_run(qrels: Dict[str, Dict[str, int]], run: Dict[str, List[Tuple[str, float]]],
              measures: Sequence[str] = MEASURES) -> Dict[str, float]:
    """Aggregate ir-measures figures (mean over the judged queries; a query absent from the run scores 0)."""
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    run_d = {q: {d: float(s) for d, s in hits} for q, hits in run.items()}
    agg = ir_measures.calc_aggregate(parsed, qrels, run_d)
    return {m: float(agg[p]) for m, p in zip(measures, parsed)}


def _encode(fn, texts: List[str], desc: str, progress: bool, chunk: int = 256) -> list:
    from tqdm.auto import tqdm

    out: list = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*were truncated.*")
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False) as bar:
            for i in range(0, len(texts), chunk):
                part = texts[i: i + chunk]
                out.extend(fn(part))
                bar.update(len(part))
    return out


def evaluate(
    dataset_dir: str,
    model: Any,
    *,
    split: str = "test",
    doc_max_length: int = 256,
    query_max_length: int = 64,
    k: int = 100,
    dtype: str = "float32",
    run_out: Optional[str] = None,
    progress: bool = True,
) -> EvalResult:
    """Encode the corpus and the judged queries with ``model`` (an artifact path or an :class:`Expander`), index,
    search the top ``k`` exactly and score nDCG@10, RR@10 (MRR@10) and R@100 with ir-measures."""
    from splade_onnx.encode.expander import Expander
    from splade_onnx.index import SparseIndex

    exp = model if isinstance(model, Expander) else Expander(model)
    data = load_beir(dataset_dir, split)
    t0 = time.perf_counter()
    dvecs = _encode(lambda t: exp.encode_documents(t, max_length=doc_max_length), data.doc_texts, "documents",
                    progress)
    t1 = time.perf_counter()
    qvecs = _encode(lambda t: exp.encode_queries(t, max_length=query_max_length), data.query_texts, "queries",
                    progress)
    t2 = time.perf_counter()
    index = SparseIndex.from_vectors(dvecs, data.doc_ids, vocab_size=exp.vocab_size, dtype=dtype)
    t3 = time.perf_counter()
    hits = index.search(qvecs, k=k)
    t4 = time.perf_counter()
    run: Dict[str, List[Tuple[str, float]]] = dict(zip(data.query_ids, hits))  # type: ignore[arg-type]
    if run_out:
        write_trec_run(run, run_out)
    metrics = score_run(data.qrels, run)
    return EvalResult(
        dataset=os.path.basename(os.path.normpath(dataset_dir)), split=split, docs=len(data.doc_ids),
        queries=len(data.query_ids), metrics=metrics, encode_docs_s=t1 - t0, encode_queries_s=t2 - t1,
        index_s=t3 - t2, search_s=t4 - t3,
        settings={"doc_max_length": doc_max_length, "query_max_length": query_max_length, "k": k, "dtype": dtype,
                  "model": getattr(exp, "path", str(model))},
    )
