"""Search benchmark at scale: SparseIndex (exhaustive, block-max exact, approximate, batch) vs scipy CSC/CSR, BMP and
Seismic, interleaved in one run on a generated corpus (benchmarks/corpus_gen.py) with the real SciFact test queries.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 python benchmarks/search_bench.py --docs 1000000
    python benchmarks/search_bench.py --smoke          # tiny sizes, seconds (run by tests/test_index.py)

Every contestant's top 10 is checked against brute force (SparseIndex's exhaustive float64 path, itself checked against
a scipy CSR product on the first queries). All timings are single-thread numbers from one process, contestants
interleaved query by query (so machine noise hits them alike); the ratios are the figures that count.
Peers (benchmark-only, benchmarks/requirements-search.txt): bmp (block-max pruning, SIGIR 2024; integer weights, so
its "exact" mode is exact for its quantized weights), pyseismic-lsr (approximate), splade-index (numba; exhaustive);
and with --lucene, Lucene impact search through Anserini's fat jar (Java 21+; benchmarks/lucene/ImpactSearch.java,
driven query by query from here and timed inside the JVM).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import corpus_gen  # noqa: E402

from splade_onnx import SparseIndex, SparseVector  # noqa: E402

ACCURACIES = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4)


def pct(lat: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(lat) * 1000, p)) if len(lat) else float("nan")


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def recall(got: Sequence[Sequence[int]], ref: Sequence[Sequence[int]], k: int = 10) -> float:
    r = [len(set(list(g)[:k]) & set(list(e)[:k])) / len(list(e)[:k]) for g, e in zip(got, ref, strict=False) if len(e)]
    return float(np.mean(r)) if r else float("nan")


def exact_agree(
    got: Sequence[Tuple[Sequence[int], Sequence[float]]],
    ref: Sequence[Tuple[Sequence[int], Sequence[float]]],
    tol: float = 1e-4,
) -> int:
    """Queries whose top 10 equals the reference (ids, or only swapped inside ties within tol)."""
    ok = 0
    for (gi, gs), (ri, rs) in zip(got, ref, strict=False):
        if list(gi) == list(ri):
            ok += 1
        elif len(gi) == len(ri) and np.allclose(gs, rs, atol=tol, rtol=0):
            ok += 1
    return ok


class Contestant:
    """One way to search: ``fn(i)`` answers query ``i`` with (ids, scores); with ``self_timed`` it answers
    ((ids, scores), seconds) and that time, taken where the search runs (another process), is its latency; the
    round trip is kept in ``wall``."""

    def __init__(
        self, name: str, fn: Callable[[int], Any], exact: bool, note: str = "", self_timed: bool = False
    ) -> None:
        self.name, self.fn, self.exact, self.note, self.self_timed = name, fn, exact, note, self_timed
        self.lat: List[float] = []
        self.wall: List[float] = []
        self.out: List[Tuple[Sequence[int], Sequence[float]]] = []


def timing_row(c: Contestant) -> Dict[str, Any]:
    """A contestant's name, kind, query count and latency figures (ms)."""
    return {
        "name": c.name,
        "exact": c.exact,
        "queries": len(c.out),
        "p50_ms": pct(c.lat, 50),
        "p90_ms": pct(c.lat, 90),
        "p99_ms": pct(c.lat, 99),
        "mean_ms": float(np.mean(c.lat) * 1000),
    }


def run_interleaved(contestants: List[Contestant], nq: int, reps: int = 1) -> None:
    for c in contestants:  # warm-up (page-in, lazy structures)
        for i in range(min(3, nq)):
            c.fn(i)
    for r in range(reps):
        for i in range(nq):
            for c in contestants:
                t = time.perf_counter()
                o = c.fn(i)
                wall = time.perf_counter() - t
                if c.self_timed:
                    o, inside = o
                    c.lat.append(inside)
                    c.wall.append(wall)
                else:
                    c.lat.append(wall)
                if r == 0:
                    c.out.append(o)


def main(argv=None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--accuracies", default=",".join(map(str, ACCURACIES)), help="approximate knob values timed")
    ap.add_argument("--scipy-csr-queries", type=int, default=20, help="queries for the slow scipy CSR contestant")
    ap.add_argument("--no-peers", action="store_true", help="skip bmp and pyseismic-lsr")
    ap.add_argument("--seismic", action="store_true", help="also pyseismic-lsr (memory: several GB at 1M docs)")
    ap.add_argument("--lucene", action="store_true", help="also Lucene impact search through Anserini (Java 21+)")
    ap.add_argument("--splade-index", action="store_true", help="also splade-index's numba search (numba)")
    ap.add_argument(
        "--reorder", action="store_true", help="renumber the documents by graph bisection before the blocks"
    )
    ap.add_argument("--keep-index", default=None, help="also save the built index to this folder")
    ap.add_argument(
        "--load-index",
        default=None,
        help="time an index saved by --keep-index over the same corpus instead of building one (its build "
        "figures are those of the run that saved it)",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI): 80 real docs -> 3,000 generated")
    ap.add_argument("--model", default=str(REPO / "artifacts" / "splade-tiny"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    import scipy.sparse as sp

    t0 = time.perf_counter()
    tmp_root = REPO / "benchmarks" / "results" / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=str(tmp_root)))
    if args.smoke:
        from splade_onnx import Expander
        from splade_onnx.evaluate import load_beir

        exp = Expander(args.model)
        data = load_beir(str(corpus_gen.DATASETS / "scifact"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real_csr = corpus_gen._vecs_to_csr(exp.encode_documents(data.doc_texts[:80], max_length=128))
            qcsr = corpus_gen._vecs_to_csr(exp.encode_queries(data.query_texts[:20]))
        V = exp.vocab_size
        args.docs, args.queries, args.block_size = 3000, 20, 16
        gen = corpus_gen.generate(real_csr, V, args.docs, tmp / "gen", chunk=1000)
        gen_s = None
    else:
        real, gen, V = corpus_gen.corpus(args.docs)
        q = real["scifact-queries-test"]
        qcsr = (q[0], q[1], q[2])  # type: ignore[index]
        gj = corpus_gen.CACHE / f"gen-{args.docs}-s0" / "generate.json"
        gen_s = json.loads(gj.read_text())["seconds"] if gj.is_file() else None
    qip, qind, qval = qcsr
    nq = min(args.queries, len(qip) - 1)
    queries = [
        SparseVector(qind[qip[i] : qip[i + 1]].astype(np.int32), qval[qip[i] : qip[i + 1]].astype(np.float32))
        for i in range(nq)
    ]
    ip, ind, val = gen
    N = len(ip) - 1
    res: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python"] + sys.argv),
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "docs": N,
        "postings": int(ip[-1]),
        "queries": nq,
        "smoke": args.smoke,
        "generate_s": gen_s,
        "query_terms_mean": float(np.mean([len(q.indices) for q in queries])),
    }
    # ------------------------------------------------------------------------------------------------ build
    t = time.perf_counter()
    if args.load_index:
        index = SparseIndex.load(args.load_index, mmap=False)
        if len(index) != N or index.nnz != int(ip[-1]):
            raise SystemExit(f"{args.load_index} does not hold this corpus ({len(index):,} documents)")
        res["loaded_index"] = args.load_index
        args.reorder = index.ids[: min(N, 1000)] != list(range(min(N, 1000)))
        args.block_size = index.block_size or args.block_size
    else:
        index = SparseIndex.from_csr(ip, ind, val, vocab_size=V)
    res["build_postings_s"] = time.perf_counter() - t
    t = time.perf_counter()
    index._dense_index()  # built on the first search otherwise
    res["build_dense_s"] = time.perf_counter() - t
    res["reorder"] = args.reorder
    if args.reorder and not args.load_index:
        t = time.perf_counter()
        index.reorder_documents(leaf_size=args.block_size)
        res["build_reorder_s"] = time.perf_counter() - t
        print(f"reordered in {res['build_reorder_s']:.1f}s", flush=True)
        index._dense_index()
    t = time.perf_counter()
    index.build_blocks(args.block_size)
    res["build_blocks_s"] = time.perf_counter() - t
    res["bytes_per_posting"] = {
        "postings": index.nbytes / index.nnz,
        "blocks": index.pruning_nbytes / index.nnz,
        "dense": index.dense_nbytes / index.nnz,
        "total": (index.nbytes + index.pruning_nbytes + index.dense_nbytes) / index.nnz,
    }
    res["block_size"] = args.block_size
    res["rss_after_build_gb"] = rss_gb()
    print(f"built {N:,} docs in {res['build_postings_s']:.1f}s + blocks {res['build_blocks_s']:.1f}s", flush=True)
    # ------------------------------------------------------------------------------------------------ reference
    ref = []
    for qv in queries:
        h = index.search(qv, k=10, exhaustive=True)
        ref.append(([int(d) for d, _ in h], [s for _, s in h]))
    ip32 = ip.astype(np.int32) if int(ip[-1]) < 2**31 else ip
    D = sp.csr_matrix((np.asarray(val), np.asarray(ind), ip32), shape=(N, V))
    ncsr = min(nq, args.scipy_csr_queries)
    qdense = [qv.to_dense(V) for qv in queries]

    def scipy_top(s: np.ndarray) -> Tuple[List[int], List[float]]:
        part = np.argpartition(-s, 9)[:10]
        part = part[s[part] > 0]
        o = part[np.lexsort((part, -s[part]))]
        return o.tolist(), s[o].tolist()

    ref_check = [scipy_top(np.asarray(D @ qdense[i].astype(np.float64)).ravel()) for i in range(ncsr)]
    res["reference_vs_scipy_csr_float64"] = f"{exact_agree(ref[:ncsr], ref_check)}/{ncsr} identical top 10"
    # scipy CSC (the inverted layout; column slice + product) over the index's own term-major arrays (no copy)
    seg = index._segments[0]
    C = sp.csc_matrix((seg.weights, seg.docs, np.asarray(seg.indptr).astype(np.int32)), shape=(N, V))
    id_of = np.asarray(index._ids, np.int64)  # ordinal -> document id (differ after --reorder)

    # ------------------------------------------------------------------------------------------------ contestants
    def ours(acc: float = 1.0) -> Callable[[int], Tuple[List[int], List[float]]]:
        def f(i: int) -> Tuple[List[int], List[float]]:
            h = index.search(queries[i], k=10, accuracy=acc)
            return [int(d) for d, _ in h], [s for _, s in h]

        return f

    def exhaustive(i: int) -> Tuple[List[int], List[float]]:
        h = index.search(queries[i], k=10, exhaustive=True)
        return [int(d) for d, _ in h], [s for _, s in h]

    dense = index._dense_index()

    def postings_only(i: int) -> Tuple[List[int], List[float]]:
        index._dense = None  # the same scan without the dense rows of the most frequent terms
        try:
            h = index.search(queries[i], k=10, exhaustive=True)
        finally:
            index._dense = dense
        return [int(d) for d, _ in h], [s for _, s in h]

    def csc(i: int) -> Tuple[List[int], List[float]]:
        qv = queries[i]
        o, sc = scipy_top(np.asarray(C[:, qv.indices] @ qv.values.astype(np.float64)).ravel())
        return id_of[o].tolist(), sc

    def csr(i: int) -> Tuple[List[int], List[float]]:
        return scipy_top(np.asarray(D @ qdense[i]).ravel())

    cs = [
        Contestant("SparseIndex exact, default scan (dense rows + postings)", exhaustive, True),
        Contestant("SparseIndex exact, block-max (build_blocks)", ours(), True),
        Contestant("SparseIndex exact, postings only", postings_only, True),
        Contestant("scipy CSC column slice", csc, True),
    ]
    cs += [
        Contestant(f"SparseIndex approximate accuracy={a}", ours(float(a)), False)
        for a in args.accuracies.split(",")
        if a
    ]
    peers: Dict[str, Any] = {}
    closers: List[Callable[[], None]] = []
    order = np.asarray(index.ids, np.int64) if args.reorder else None  # peers get the reordered order too
    if not args.no_peers:
        peers.update(build_bmp(ip, ind, val, V, N, tmp, args.block_size, queries, cs, order))
        if args.seismic:
            peers.update(build_seismic(ip, ind, val, V, N, queries, cs))
    if args.lucene:
        peers.update(build_lucene(ip, ind, val, V, N, tmp, queries, cs, closers, order))
    if args.splade_index:
        peers.update(build_splade_index(index, id_of, queries, cs))
    res["peers"] = peers
    print(f"timing {len(cs)} contestants x {nq} queries", flush=True)
    try:
        run_interleaved(cs, nq)
    finally:
        for close in closers:
            close()
    for c in cs:
        if c.wall:
            peers.setdefault("round_trip_p50_ms", {})[c.name] = pct(c.wall, 50)
    csr_c = Contestant("scipy CSR product (brute force)", csr, True)
    run_interleaved([csr_c], ncsr)
    cs.append(csr_c)
    base = {c.name: c for c in cs}
    rows = []
    for c in cs:
        n = len(c.out)
        rows.append(
            timing_row(c)
            | {
                "identical_top10": exact_agree(c.out, ref[:n]),
                "recall@10_vs_exact": recall([o[0] for o in c.out], [r[0] for r in ref[:n]]),
                "note": c.note,
            }
        )
    res["contestants"] = rows
    ex = base["SparseIndex exact, default scan (dense rows + postings)"]
    res["ratios_p50"] = {c.name: pct(c.lat, 50) / pct(ex.lat, 50) for c in cs}
    res["ratios_mean"] = {c.name: float(np.mean(c.lat) / np.mean(ex.lat)) for c in cs}
    st = [index.search_stats(qv, 10) for qv in queries]
    res["blocks_scored_fraction_mean"] = float(np.mean([s["blocks_scored"] / s["blocks"] for s in st]))
    res["gave_up_fraction"] = float(np.mean([s["gave_up"] for s in st]))
    res["rounds_mean"] = float(np.mean([s["rounds"] for s in st]))
    # ------------------------------------------------------------------------------------------------ batch
    res["batch"] = batch_figures(index, queries)
    # ------------------------------------------------------------------------------------------------ save/mmap
    d = Path(args.keep_index) if args.keep_index else tmp / "ix"
    t = time.perf_counter()
    index.save(d)
    res["save_s"] = time.perf_counter() - t
    res["disk_bytes_per_posting"] = sum(f.stat().st_size for f in d.rglob("*") if f.is_file()) / index.nnz
    t = time.perf_counter()
    m = SparseIndex.load(d, mmap=True)
    res["mmap_load_s"] = time.perf_counter() - t
    res["mmap_same_results"] = all(m.search(qv, k=10) == index.search(qv, k=10) for qv in queries[:50])
    del m
    res["rss_peak_gb"] = rss_gb()
    res["total_s"] = time.perf_counter() - t0
    shutil.rmtree(tmp, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "search_smoke" if args.smoke else "search"
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{name}.md").write_text(to_markdown(res))
    if not args.smoke:
        plot(res, out / f"{name}.png")
    print(to_markdown(res))
    return res


def batch_figures(index: SparseIndex, queries: List[SparseVector]) -> Dict[str, float]:
    """Queries/s of the default scan one by one, as one batch call, and as a batch on 2 threads (3 alternations,
    best of each: the figures move with the machine)."""
    out: Dict[str, float] = {}
    for _ in range(3):
        t = time.perf_counter()
        for qv in queries:
            index.search(qv, k=10, exhaustive=True)
        out["one_by_one_qps"] = max(out.get("one_by_one_qps", 0.0), len(queries) / (time.perf_counter() - t))
        t = time.perf_counter()
        index.search(list(queries), k=10, exhaustive=True)
        out["batch_call_qps"] = max(out.get("batch_call_qps", 0.0), len(queries) / (time.perf_counter() - t))
        t = time.perf_counter()
        index.search(list(queries), k=10, exhaustive=True, workers=2)
        out["batch_2_threads_qps"] = max(out.get("batch_2_threads_qps", 0.0), len(queries) / (time.perf_counter() - t))
    return out


def build_bmp(ip, ind, val, V, N, tmp: Path, bsize: int, queries, cs: List[Contestant], order=None) -> Dict[str, Any]:
    """BMP over the same documents, added in ``order`` (the reordered index's order with --reorder, so that BMP's
    blocks get the same clustering)."""
    try:
        import bmp
    except Exception as e:  # noqa: BLE001
        return {"bmp": {"error": f"bmp not importable: {e}"}}
    # bmp keeps a document's term weights as 8-bit integers: a weight past 255 wraps around (its pyterrier wrapper's
    # default scale of 100 does that to every weight above 2.55), so the weights are scaled to the full 1..255 range
    # by the largest one, as the index's own uint8 storage does; bmp quantises the query weights itself
    scale = 255.0 / float(np.max(val))
    t = time.perf_counter()
    path = str(tmp / "index.bmp")
    indexer = bmp.Indexer(path, bsize=bsize, compress_range=False)
    toks = [str(i) for i in range(V)]
    for d in order.tolist() if order is not None else range(N):
        a, b = int(ip[d]), int(ip[d + 1])
        iv = np.clip(np.rint(np.asarray(val[a:b], np.float64) * scale), 1, 255).astype(np.int64).tolist()
        indexer.add_document(str(d), dict(zip([toks[j] for j in np.asarray(ind[a:b]).tolist()], iv, strict=False)))
    indexer.finish()
    build = time.perf_counter() - t
    searcher = bmp.Searcher(path)
    qd = [{toks[j]: float(w) for j, w in zip(q.indices.tolist(), q.values.tolist(), strict=False)} for q in queries]

    def run(alpha: float, beta: float = 1.0):
        def f(i: int) -> Tuple[List[int], List[float]]:
            docnos, scores = searcher.search(qd[i], k=10, alpha=alpha, beta=beta)
            return [int(x) for x in docnos], list(scores)

        return f

    cs.append(
        Contestant("BMP exact (alpha=1)", run(1.0), False, "exact for its 8-bit weights and its query quantisation")
    )
    for a in (0.9, 0.8, 0.7, 0.6, 0.5):
        cs.append(Contestant(f"BMP approximate alpha={a}", run(a), False))
    return {
        "bmp": {
            "build_s": build,
            "bsize": bsize,
            "weight_scale": scale,
            "documents_added_in_reordered_order": order is not None,
            "index_bytes": os.path.getsize(path),
            "bytes_per_posting": os.path.getsize(path) / int(ip[-1]),
        }
    }


def build_seismic(ip, ind, val, V, N, queries, cs: List[Contestant]) -> Dict[str, Any]:
    try:
        import seismic
        from seismic import SeismicDataset, SeismicIndex
    except Exception as e:  # noqa: BLE001
        return {"seismic": {"error": f"pyseismic-lsr not importable: {e}"}}
    try:
        stype = seismic.get_seismic_string()
        toks = np.array([str(i) for i in range(V)], dtype=stype)
        t = time.perf_counter()
        ds = SeismicDataset()
        for d in range(N):
            a, b = int(ip[d]), int(ip[d + 1])
            ds.add_document(str(d), toks[np.asarray(ind[a:b])], np.asarray(val[a:b], dtype=np.float32))
        sidx = SeismicIndex.build_from_dataset(ds)
        build = time.perf_counter() - t
        del ds
        qc = [toks[q.indices] for q in queries]
        qv = [q.values.astype(np.float32) for q in queries]

        def run(cut: int, hf: float):
            def f(i: int) -> Tuple[List[int], List[float]]:
                r = sidx.search(str(i), qc[i], qv[i], 10, query_cut=cut, heap_factor=hf)
                return [int(x[2]) for x in r], [float(x[1]) for x in r]

            return f

        for cut, hf in ((10, 0.7), (20, 0.7), (20, 0.9), (40, 0.9), (64, 1.0)):
            cs.append(Contestant(f"Seismic query_cut={cut} heap_factor={hf}", run(cut, hf), False))
        return {"seismic": {"build_s": build}}
    except Exception as e:  # noqa: BLE001
        return {"seismic": {"error": f"pyseismic-lsr failed: {type(e).__name__}: {e}"}}


def build_lucene(
    ip, ind, val, V, N, tmp: Path, queries, cs: List[Contestant], closers: List[Callable[[], None]], order=None
) -> Dict[str, Any]:
    """Lucene impact search through Anserini over the same documents (added in ``order``, the reordered index's
    order with --reorder), as Anserini indexes SPLADE vectors: ``JsonVectorCollection``, integer impacts
    ``round(w * 100)``, ``IndexCollection -impact -pretokenized`` on one thread, merged to one segment
    (``-optimize``); queries quantised the same way, searched by ``SimpleImpactSearcher`` in one Java process
    (``benchmarks/lucene/ImpactSearch.java``) query by query, timed inside the JVM."""
    import subprocess

    from splade_onnx.engines import anserini

    try:
        java, jar = anserini.find_java(), anserini.find_jar()
    except anserini.AnseriniError as e:
        return {"lucene": {"error": str(e)}}
    javac = str(Path(java).resolve().with_name("javac"))  # the JDK the java binary belongs to
    if not Path(javac).is_file():
        return {"lucene": {"error": f"no javac next to {java}: the searcher is compiled here (a JDK is needed)"}}
    classes = tmp / "lucene-classes"
    classes.mkdir(parents=True, exist_ok=True)
    src = REPO / "benchmarks" / "lucene" / "ImpactSearch.java"
    subprocess.run([javac, "-cp", jar, "-d", str(classes), str(src)], check=True, capture_output=True, text=True)
    names = [f"t{i}" for i in range(V)]  # one Lucene term per vocabulary id
    docs = order.tolist() if order is not None else range(N)

    def vectors():
        for d in docs:
            a, b = int(ip[d]), int(ip[d + 1])
            yield SparseVector(np.asarray(ind[a:b], np.int32), np.asarray(val[a:b], np.float32))

    t = time.perf_counter()
    coll = anserini.write_collection(
        tmp / "lucene-collection", (str(d) for d in docs), vectors(), names, check_duplicates=False
    )
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    counters = anserini.index(
        coll.directory, tmp / "lucene-index", threads=1, java=java, jar=jar, heap="4g", extra_args=["-optimize"]
    )
    index_s = time.perf_counter() - t
    shutil.rmtree(coll.directory, ignore_errors=True)
    if counters.get("indexed") != N:
        raise RuntimeError(f"Anserini indexed {counters.get('indexed')} of {N:,} documents: {counters}")
    size = sum(f.stat().st_size for f in (tmp / "lucene-index").rglob("*") if f.is_file())
    proc = subprocess.Popen(
        [java, "-Xmx4g", "-cp", f"{jar}:{classes}", "ImpactSearch", str(tmp / "lucene-index"), "10"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def close() -> None:
        stdin.close()
        proc.wait(timeout=60)

    closers.append(close)
    lines = []
    for q in queries:
        qq = anserini.quantized_vector(q)
        lines.append(" ".join(f"{names[t]} {int(w)}" for t, w in zip(qq.indices.tolist(), qq.values.tolist())))

    def f(i: int) -> Tuple[Tuple[List[int], List[float]], float]:
        stdin.write(lines[i] + "\n")
        stdin.flush()
        answer = stdout.readline().rstrip("\n").split("\t")
        if not answer[0]:
            raise RuntimeError(f"the Lucene searcher stopped (exit {proc.poll()})")
        hits = [h.rsplit(":", 1) for h in answer[1:]]
        return ([int(d) for d, _ in hits], [float(s) / 1e4 for _, s in hits]), int(answer[0]) / 1e9

    t = time.perf_counter()
    for i in range(len(queries)):  # JIT warm-up: every query once (the other contestants' structures are warm too)
        f(i)
    warm_s = time.perf_counter() - t
    cs.append(
        Contestant(
            f"Lucene impact search ({Path(jar).name.replace('-fatjar.jar', '').replace('anserini-', 'Anserini ')})",
            f,
            False,
            "integer impacts (x100), one segment; timed inside the JVM",
            self_timed=True,
        )
    )
    return {
        "lucene": {
            "anserini_jar": Path(jar).name,
            "java": anserini.java_version(java),
            "write_collection_s": write_s,
            "index_s": index_s,
            "indexed": counters.get("indexed"),
            "index_bytes": size,
            "bytes_per_posting": size / int(ip[-1]),
            "warm_up_s": warm_s,
            "documents_added_in_reordered_order": order is not None,
        }
    }


def build_splade_index(index: SparseIndex, id_of: np.ndarray, queries, cs: List[Contestant]) -> Dict[str, Any]:
    """splade-index (numba; by splade-tiny's author): its numba search function, one thread, over the index's own
    term-major arrays (the CSC matrix splade-index builds), the queries' vectors given directly (splade-index
    would encode them with sentence-transformers)."""
    try:
        import numba
        from splade_index.numba.retrieve_utils import _retrieve_numba_functional
        from splade_index.version import __version__ as version
    except Exception as e:  # noqa: BLE001
        return {"splade_index": {"error": f"splade-index not importable: {e}"}}
    seg = index._segments[0]
    if index.dtype != "float32":
        return {"splade_index": {"error": "splade-index scores float32 weights; the index holds " + index.dtype}}
    scores = {
        "data": np.asarray(seg.weights),
        "indices": np.asarray(seg.docs).astype(np.int32, copy=False),
        "indptr": np.asarray(seg.indptr).astype(np.int32),
        "num_docs": len(index),
    }
    numba.set_num_threads(1)

    def f(i: int) -> Tuple[List[int], List[float]]:
        q = queries[i]
        docs, sc = _retrieve_numba_functional(
            [q.indices.astype(np.int32)], [q.values.astype(np.float32)], scores, k=10, n_threads=1
        )
        keep = sc[0] > 0
        return id_of[docs[0][keep]].tolist(), sc[0][keep].astype(float).tolist()

    t = time.perf_counter()
    f(0)  # compiles
    compile_s = time.perf_counter() - t
    cs.append(Contestant(f"splade-index {version} (numba, 1 thread)", f, True, "exhaustive, float32 sums"))
    return {"splade_index": {"version": version, "numba": numba.__version__, "compile_s": compile_s}}


def to_markdown(r: Dict[str, Any]) -> str:
    bp = r["bytes_per_posting"]
    lines = [
        f"# Search benchmark ({'smoke' if r['smoke'] else 'full'}): {r['docs']:,} generated documents, "
        f"{r['queries']} real SciFact queries, top 10",
        "",
        f"{r['date']}; `{r['command']}`; machine {r['machine']}",
        "",
        f"{r['postings']:,} postings ({r['postings'] / r['docs']:.0f}/doc), "
        f"{r['query_terms_mean']:.1f} terms/query. "
        + (
            f"Index loaded from {r['loaded_index']} ({r['build_postings_s']:.1f}s; "
            + ("reordered" if r.get("reorder") else "arbitrary order")
            + "), "
            if r.get("loaded_index")
            else f"Build: postings {r['build_postings_s']:.1f}s, dense rows {r.get('build_dense_s', 0.0):.1f}s, "
            + (
                f"document reordering (BP) {r['build_reorder_s']:.1f}s, "
                if r.get("reorder")
                else "documents in arbitrary order, "
            )
        )
        + "block-max "
        f"({r['block_size']} docs/block) {r['build_blocks_s']:.1f}s; bytes/posting {bp['postings']:.2f} postings + "
        f"{bp.get('dense', 0.0):.2f} dense rows + {bp['blocks']:.2f} blocks = "
        f"{bp['total']:.2f} in memory, {r['disk_bytes_per_posting']:.2f} on disk. Blocks scored per query "
        f"{100 * r['blocks_scored_fraction_mean']:.2f}% in {r['rounds_mean']:.1f} rounds (mean); the bounds "
        f"could not prune (exhaustive scan instead) for {100 * r['gave_up_fraction']:.0f}% of the queries. "
        f"Reference check: {r['reference_vs_scipy_csr_float64']} vs scipy CSR float64.",
        "",
        "| contestant | p50 ms | p90 ms | p99 ms | mean ms | x exact p50 | identical top 10 | recall@10 | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in r["contestants"]:
        lines.append(
            f"| {c['name']} | {c['p50_ms']:.2f} | {c['p90_ms']:.2f} | {c['p99_ms']:.2f} | "
            f"{c['mean_ms']:.2f} | "
            f"{r['ratios_p50'][c['name']]:.2f} | {c['identical_top10']}/{c['queries']} | "
            f"{c['recall@10_vs_exact']:.3f} | {c['note']} |"
        )
    b = r["batch"]
    lines += [
        "",
        "Batch: " + ", ".join(f"{k} {v:.0f}" for k, v in b.items()),
        f"Peers: {json.dumps(r['peers'])}",
        f"save {r['save_s']:.1f}s, mmap load {1000 * r['mmap_load_s']:.0f} ms, "
        f"same results after mmap load: {r['mmap_same_results']}; peak RSS {r['rss_peak_gb']:.1f} GB",
        "",
    ]
    return "\n".join(lines)


def plot(r: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {
        "SparseIndex": ("C0", "o"),
        "BMP": ("C1", "s"),
        "Seismic": ("C2", "^"),
        "Lucene": ("C3", "D"),
        "splade-index": ("C4", "v"),
        "scipy": ("C7", "x"),
    }
    for g, (col, mk) in groups.items():
        pts = [
            (c["p50_ms"], c["recall@10_vs_exact"], c["name"])
            for c in r["contestants"]
            if c["name"].startswith(g) and "postings only" not in c["name"] and "CSR" not in c["name"]
        ]
        if pts:
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=mk, color=col, label=g, linestyle="-")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per query, ms (single thread, log scale)")
    ax.set_ylabel("recall@10 vs exact top 10")
    ax.axhline(0.97, color="grey", lw=0.5, ls="--")
    ax.axvline(1.0, color="grey", lw=0.5, ls="--")
    ax.set_title(f"{r['docs']:,} generated docs, {r['queries']} SciFact queries ({r['date']})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    gc.collect()
    main()
