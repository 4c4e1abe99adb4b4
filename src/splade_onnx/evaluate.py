"""Retrieval evaluation on a BEIR-layout folder: encode, index, search, score with ir-measures.

Needs the ``eval`` extra (``ir-measures``, ``tqdm``), imported lazily.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from splade_onnx.index.hybrid import BM25, DEFAULT_FUSION, FUSIONS, Hit, fuse
from splade_onnx.io.corpus import BeirData, load_beir, write_trec_run
from splade_onnx.vectors import SparseVector

__all__ = ["evaluate", "score_run", "EvalResult", "BeirData", "load_beir", "MEASURES"]

log = logging.getLogger("splade_onnx")

MEASURES = ("nDCG@10", "RR@10", "R@100")


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
    hybrid: Dict[str, Any] = field(default_factory=dict)  # evaluate(hybrid="bm25"): fusion, weights, metrics

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def score_run(
    qrels: Dict[str, Dict[str, int]], run: Dict[str, List[Tuple[str, float]]], measures: Sequence[str] = MEASURES
) -> Dict[str, float]:
    """Aggregate ir-measures figures (mean over the judged queries; a query absent from the run scores 0)."""
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    run_d = {q: {d: float(s) for d, s in hits} for q, hits in run.items()}
    agg = ir_measures.calc_aggregate(parsed, qrels, run_d)
    return {m: float(agg[p]) for m, p in zip(measures, parsed)}


def _encode(
    fn: Callable[[List[str]], List[SparseVector]], texts: List[str], desc: str, progress: bool, chunk: int = 256
) -> List[SparseVector]:
    from tqdm.auto import tqdm

    out: List[SparseVector] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*were truncated.*")
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False) as bar:
            for i in range(0, len(texts), chunk):
                part = texts[i : i + chunk]
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
    hybrid: Optional[str] = None,
    tune_split: str = "train",
) -> EvalResult:
    """Encode the corpus and the judged queries with ``model`` (an artifact path or an :class:`Expander`), index,
    search the top ``k`` exactly and score nDCG@10, RR@10 (MRR@10) and R@100 with ir-measures.

    ``hybrid="bm25"`` also fuses the SPLADE ranking with BM25 (the ``[hybrid]`` extra): fusion method and weight
    are chosen on ``tune_split`` (never on ``split``; the defaults when the dataset has no such qrels) and the
    fused run is scored on ``split`` (``EvalResult.hybrid``)."""
    from splade_onnx.encode.expander import Expander
    from splade_onnx.index import SparseIndex

    exp = model if isinstance(model, Expander) else Expander(model)
    data = load_beir(dataset_dir, split)
    t0 = time.perf_counter()
    dvecs = _encode(lambda t: exp.encode_documents(t, max_length=doc_max_length), data.doc_texts, "documents", progress)
    t1 = time.perf_counter()
    qvecs = _encode(lambda t: exp.encode_queries(t, max_length=query_max_length), data.query_texts, "queries", progress)
    t2 = time.perf_counter()
    index = SparseIndex.from_vectors(dvecs, data.doc_ids, vocab_size=exp.vocab_size, dtype=dtype)
    t3 = time.perf_counter()
    hits = index.search(qvecs, k=k)
    t4 = time.perf_counter()
    run: Dict[str, List[Tuple[str, float]]] = {q: [(str(d), s) for d, s in h] for q, h in zip(data.query_ids, hits)}
    if run_out:
        write_trec_run(run, run_out)
    metrics = score_run(data.qrels, run)
    hyb: Dict[str, Any] = {}
    if hybrid is not None:
        hyb = evaluate_hybrid(
            hybrid,
            dataset_dir,
            data,
            run,
            index,
            lambda t: _encode(
                lambda x: exp.encode_queries(x, max_length=query_max_length), t, "tuning queries", progress
            ),
            split=split,
            tune_split=tune_split,
            k=k,
        )
    return EvalResult(
        dataset=os.path.basename(os.path.normpath(dataset_dir)),
        split=split,
        docs=len(data.doc_ids),
        queries=len(data.query_ids),
        metrics=metrics,
        encode_docs_s=t1 - t0,
        encode_queries_s=t2 - t1,
        index_s=t3 - t2,
        search_s=t4 - t3,
        settings={
            "doc_max_length": doc_max_length,
            "query_max_length": query_max_length,
            "k": k,
            "dtype": dtype,
            "model": getattr(exp, "path", str(model)),
        },
        hybrid=hyb,
    )


# ------------------------------------------------------------------------------------------------------ hybrid
def tune(
    qrels: Dict[str, Dict[str, int]],
    query_ids: Sequence[str],
    sparse_runs: Sequence[Sequence[Hit]],
    other_runs: Sequence[Sequence[Hit]],
    k: int = 100,
    step: float = 0.05,
) -> Tuple[str, float, float]:
    """The fusion method and sparse weight with the best nDCG@10 on these (tuning) queries: (method, weight, nDCG@10).
    Ties go to the first method of :data:`FUSIONS` and the smallest weight."""
    best = ("", 0.0, -1.0)
    for method in FUSIONS:
        for w in np.round(np.arange(0.0, 1.0 + 1e-9, step), 4).tolist():
            run = {q: fuse(method, a, b, w, k) for q, a, b in zip(query_ids, sparse_runs, other_runs, strict=True)}
            nd = score_run(qrels, run, ("nDCG@10",))["nDCG@10"]
            if nd > best[2] + 1e-12:
                best = (method, float(w), nd)
    return best


def evaluate_hybrid(
    other: str,
    dataset_dir: str,
    data: Any,
    sparse_run: Dict[str, List[Hit]],
    index: Any,
    encode_queries: Any,
    *,
    split: str,
    tune_split: str,
    k: int = 100,
) -> Dict[str, Any]:
    """``evaluate(hybrid=...)``: BM25 over ``data``'s documents, fusion chosen on ``tune_split``'s queries (SPLADE
    runs from ``index`` with ``encode_queries``), applied to ``sparse_run`` and scored on ``data.qrels``."""
    if other != "bm25":
        raise ValueError(f"hybrid must be 'bm25', got {other!r}")
    if tune_split == split:
        raise ValueError(f"the tuning split must differ from the evaluated split ({split!r})")
    bm = BM25.from_texts(data.doc_texts, data.doc_ids)
    method, weight = DEFAULT_FUSION
    tuned_on, tune_ndcg = "defaults (no tuning split)", None
    if os.path.isfile(os.path.join(dataset_dir, "qrels", f"{tune_split}.tsv")):
        tdata = load_beir(dataset_dir, tune_split)
        if tdata.query_ids:
            tq = encode_queries(tdata.query_texts)
            t_sparse = [[(str(d), s) for d, s in h] for h in index.search(tq, k=k)]
            t_other = bm.search(tdata.query_texts, k=k)
            method, weight, tune_ndcg = tune(tdata.qrels, tdata.query_ids, t_sparse, t_other, k=k)
            tuned_on = f"{tune_split} ({len(tdata.query_ids)} queries)"
    other_hits = bm.search(data.query_texts, k=k)
    other_run = {q: [(str(d), s) for d, s in h] for q, h in zip(data.query_ids, other_hits, strict=True)}
    fused = {q: fuse(method, sparse_run[q], other_run[q], weight, k) for q in data.query_ids}
    return {
        "with": other,
        "method": method,
        "weight": weight,
        "tuned_on": tuned_on,
        "tune_nDCG@10": tune_ndcg,
        "metrics": score_run(data.qrels, fused),
        "other_metrics": score_run(data.qrels, other_run),
    }
