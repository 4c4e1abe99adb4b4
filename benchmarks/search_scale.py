"""Search at 8.8M documents (MS MARCO's passage count) on this 24 GB machine: a sharded build, then one index.

    python benchmarks/search_scale.py shards --docs 8800000      # generate + index + reorder each shard (cached)
    python benchmarks/search_scale.py merge --docs 8800000       # one uint8 index on disk, with blocks
    python benchmarks/search_scale.py bench --docs 8800000       # latency, checked against brute force
    python benchmarks/search_scale.py stats --docs 8800000       # the corpus's statistics next to the real ones

The corpus is the documented generator's (``benchmarks/corpus_gen.py``) in shards of 1M documents, shard ``j``
drawn with seed ``j`` (the 1M benchmark corpus is shard 0): a collection of N documents generated in one go has
the same distribution. Every shard is indexed with uint8 weights on one fixed scale (so the shards' stored
weights are comparable and merge without requantizing), reordered by graph bisection on its own (one core, about
as long as the 1M benchmark's reordering) and saved. ``merge`` concatenates the saved shards term by term
straight into memory-mapped files (never the whole collection in memory), builds the block-max structure over the
merged postings and saves one index. ``bench`` memory-maps it and times exact and approximate block-max search
and the exhaustive scan with the real SciFact queries, after one untimed pass over them (the page cache, as in a
serving process; the major page faults while timing are reported); brute force is scipy's float64 dot product, one
shard at a time, over the stored (dequantized) weights.

The steps can run in two processes at once (``shards --step generate`` and ``shards --step index``; the second
waits for each shard's corpus), and more index processes beside them (``--reverse``): a process claims a shard with a
``shard-J.claim`` file first (after an interrupted run, delete the claims of shards without an ``index.json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_gen  # noqa: E402
from search_bench import Contestant, exact_agree, recall, rss_gb, run_interleaved, timing_row  # noqa: E402

from splade_onnx import SparseIndex, SparseVector  # noqa: E402

SHARD_DOCS = 1_000_000  # --shard-docs
SCALE_DIR = corpus_gen.REPO / ".cache" / "search-scale"


def shard_sizes(n_docs: int) -> List[int]:
    return [min(SHARD_DOCS, n_docs - a) for a in range(0, n_docs, SHARD_DOCS)]


def weight_scale() -> float:
    """One uint8 scale for every shard: 1.25x the largest weight of shard 0 (the lognormal jitter's tail over
    2 billion draws stays under it), over 255."""
    p = SCALE_DIR / ("scale.json" if SHARD_DOCS == 1_000_000 else f"scale{SHARD_DOCS}.json")
    if p.is_file():
        return float(json.loads(p.read_text())["scale"])
    _, gen, _ = corpus_gen.corpus(SHARD_DOCS, 0)
    vmax = 0.0
    val = gen[2]
    for a in range(0, val.shape[0], 1 << 25):
        vmax = max(vmax, float(np.max(val[a : a + (1 << 25)])))
    scale = 1.25 * vmax / 255.0
    SCALE_DIR.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"scale": scale, "shard0_max_weight": vmax}))
    return scale


def shard_dir(j: int) -> Path:
    return SCALE_DIR / (f"shard-{j}" if SHARD_DOCS == 1_000_000 else f"shard{SHARD_DOCS}-{j}")


def build_shard(j: int, n: int, scale: float, first_id: int) -> None:
    """Index shard ``j`` (ids ``first_id..first_id+n-1``), reorder and save it; skipped when saved or when another
    process has claimed it."""
    out = shard_dir(j)
    if (out / "index.json").is_file():
        return
    claim = out.with_name(out.name + ".claim")
    try:
        claim.open("x").close()
    except FileExistsError:
        return
    t0 = time.perf_counter()
    real, gen, V = corpus_gen.corpus(n, j)
    ip, ind, val = gen
    ix = SparseIndex(V, dtype="uint8")
    ix.scale = scale
    t = time.perf_counter()
    ix.add_csr(ip, ind, val, ids=range(first_id, first_id + n))
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    ix.reorder_documents(leaf_size=16)
    reorder_s = time.perf_counter() - t
    ix.save(out)
    (out / "build.json").write_text(
        json.dumps({"docs": n, "postings_s": build_s, "reorder_s": reorder_s, "total_s": time.perf_counter() - t0})
    )
    print(f"shard {j}: {n:,} docs, postings {build_s:.0f}s, reorder {reorder_s:.0f}s", flush=True)


def cmd_shards(args: argparse.Namespace) -> None:
    sizes = shard_sizes(args.docs)
    if args.step == "generate":
        for j, n in enumerate(sizes):
            t = time.perf_counter()
            corpus_gen.corpus(n, j)
            print(f"corpus {j}: {n:,} docs ({time.perf_counter() - t:.0f}s)", flush=True)
        return
    scale = weight_scale()
    first = np.concatenate([[0], np.cumsum(sizes)])
    order = list(enumerate(sizes))
    for j, n in reversed(order) if args.reverse else order:
        gj = corpus_gen.CACHE / f"gen-{n}-s{j}" / "generate.json"
        while args.step == "index" and not gj.is_file():
            time.sleep(10)
        build_shard(j, n, scale, int(first[j]))


def index_dir(n_docs: int) -> Path:
    return SCALE_DIR / f"index-{n_docs}-{SHARD_DOCS}"


def merge_info_path(n_docs: int) -> Path:
    """The merge step's timings, per collection and shard size."""
    return SCALE_DIR / (f"merge-{n_docs}.json" if SHARD_DOCS == 1_000_000 else f"merge-{n_docs}-{SHARD_DOCS}.json")


def cmd_merge(args: argparse.Namespace) -> None:
    sizes = shard_sizes(args.docs)
    paths = [shard_dir(j) for j in range(len(sizes))]
    missing = [str(p) for p in paths if not (p / "index.json").is_file()]
    if missing:
        raise SystemExit(f"shards not built yet: {', '.join(missing)} (run the shards step first)")
    out = index_dir(args.docs)
    t = time.perf_counter()
    SparseIndex.merge_saved(paths, out, block_size=args.block_size)
    merge_s = time.perf_counter() - t
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    builds = [json.loads((p / "build.json").read_text()) for p in paths]
    info = {
        "docs": args.docs,
        "shards": len(sizes),
        "block_size": args.block_size,
        "merge_and_blocks_s": merge_s,
        "disk_bytes": disk,
        "rss_peak_gb": rss_gb(),
        "shard_postings_s": [b["postings_s"] for b in builds],
        "shard_reorder_s": [b["reorder_s"] for b in builds],
    }
    merge_info_path(args.docs).write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


def brute_force(queries: Sequence[SparseVector], n_docs: int, k: int = 10) -> List[Tuple[List[int], List[float]]]:
    """Top k of every query by scipy's float64 CSC column slice over each saved shard's stored weights (one shard
    in memory at a time), merged."""
    import scipy.sparse as sp

    best: List[List[Tuple[float, int]]] = [[] for _ in queries]
    for j in range(len(shard_sizes(n_docs))):
        sh = SparseIndex.load(shard_dir(j), mmap=True)
        indptr, docs, weights = sh.term_postings()
        ids = np.asarray(sh.ids, np.int64)
        C = sp.csc_matrix((np.asarray(weights), np.asarray(docs), indptr), shape=(len(sh), sh.vocab_size))
        scale = float(sh.scale or 1.0) if sh.dtype == "uint8" else 1.0
        for i, q in enumerate(queries):
            s = np.asarray(C[:, q.indices] @ q.values.astype(np.float64)).ravel() * scale
            top = np.argpartition(-s, k - 1)[:k]
            best[i] += [(float(s[o]), int(ids[o])) for o in top if s[o] > 0]
        del C, sh, docs, weights
    out = []
    for b in best:
        b.sort(key=lambda t: (-t[0], t[1]))
        out.append(([d for _, d in b[:k]], [sc for sc, _ in b[:k]]))
    return out


def cmd_bench(args: argparse.Namespace) -> Dict[str, Any]:
    real = corpus_gen.real_vectors()
    qip, qind, qval = real["scifact-queries-test"][:3]  # type: ignore[index]
    nq = min(args.queries, len(qip) - 1)
    queries = [
        SparseVector(qind[qip[i] : qip[i + 1]].astype(np.int32), qval[qip[i] : qip[i + 1]].astype(np.float32))
        for i in range(nq)
    ]
    t = time.perf_counter()
    index = SparseIndex.load(index_dir(args.docs), mmap=True)
    res: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python"] + sys.argv),
        "docs": len(index),
        "postings": index.nnz,
        "dtype": index.dtype,
        "block_size": index.block_size,
        "queries": nq,
        "query_terms_mean": float(np.mean([len(q.indices) for q in queries])),
        "mmap_load_s": time.perf_counter() - t,
        "bytes_per_posting": {
            "postings": index.nbytes / index.nnz,
            "blocks": index.pruning_nbytes / index.nnz,
            "dense": index.dense_nbytes / index.nnz,
        },
    }
    t = time.perf_counter()
    index.search(queries[0], k=10)  # the first search derives the entry map
    res["first_search_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ref = brute_force(queries, args.docs)
    res["brute_force_s"] = time.perf_counter() - t

    def ours(acc: float = 1.0, exhaustive: bool = False):
        def f(i: int) -> Tuple[List[int], List[float]]:
            h = index.search(queries[i], k=10, accuracy=acc, exhaustive=exhaustive)
            return [int(d) for d, _ in h], [s for _, s in h]

        return f

    # one untimed pass over every query first: the brute force above pushed part of the memory-mapped index out of
    # the page cache, and a serving process has its pages in memory (the Lucene contestant of search_bench.py gets
    # the same pass); the major page faults of the timed runs are reported
    t = time.perf_counter()
    for q in queries:
        index.search(q, k=10)
    res["warm_pass_s"] = time.perf_counter() - t
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    cs = [Contestant("SparseIndex exact, block-max", ours(), True)]
    cs += [
        Contestant(f"SparseIndex approximate accuracy={a}", ours(float(a)), False)
        for a in args.accuracies.split(",")
        if a
    ]
    run_interleaved(cs, nq)
    res["major_page_faults_timed"] = resource.getrusage(resource.RUSAGE_SELF).ru_majflt - faults
    scan = Contestant("SparseIndex exact, default scan", ours(exhaustive=True), True)
    run_interleaved([scan], min(nq, args.scan_queries))
    cs.append(scan)
    rows = []
    for c in cs:
        n = len(c.out)
        rows.append(
            timing_row(c)
            | {
                "identical_top10_vs_brute_force": exact_agree(c.out, ref[:n]),
                "recall@10_vs_brute_force": recall([o[0] for o in c.out], [r[0] for r in ref[:n]]),
            }
        )
    res["contestants"] = rows
    st = [index.search_stats(q, 10) for q in queries]
    res["blocks_scored_fraction_mean"] = float(np.mean([s["blocks_scored"] / s["blocks"] for s in st]))
    res["gave_up_fraction"] = float(np.mean([s["gave_up"] for s in st]))
    res["rss_peak_gb"] = rss_gb()
    mj = merge_info_path(args.docs)
    if mj.is_file():
        res["build"] = json.loads(mj.read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"search.scale-{args.docs}" + ("" if SHARD_DOCS == 1_000_000 else f"-{SHARD_DOCS}")
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{name}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return res


def cmd_stats(args: argparse.Namespace) -> Dict[str, Any]:
    """The generated collection's statistics next to the real documents', as ``corpus_gen.check`` reports them at
    1M: non-zeros per document and the DF/N curve over all shards (the DFs from the merged index), weights and
    co-occurrence of the 300 most frequent real terms on a sample drawn evenly from every shard, and exact
    duplicates within that sample (across shards too)."""
    real = corpus_gen.real_vectors()
    rcsr = corpus_gen.merged_real_docs(real)
    V = int(real["vocab_size"])  # type: ignore[arg-type]
    top = np.argsort(-np.bincount(rcsr[1], minlength=V))[:300]
    rs = corpus_gen.statistics(rcsr, V, top)
    sizes = shard_sizes(args.docs)
    per = args.sample // len(sizes)
    rng = np.random.default_rng(3)
    parts: List[Tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    lens = []
    for j, n in enumerate(sizes):
        _, (ip, ind, val), _ = corpus_gen.corpus(n, j)
        lens.append(np.diff(ip))
        rows = np.sort(rng.choice(n, size=min(n, per), replace=False))
        L = np.diff(ip)[rows]
        src = np.repeat(ip[rows] - np.cumsum(np.concatenate([[0], L[:-1]])), L) + np.arange(int(L.sum()))
        parts.append((L, np.asarray(ind[src]), np.asarray(val[src])))
    L = np.concatenate([p[0] for p in parts])
    sample = (
        np.concatenate([[0], np.cumsum(L)]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )
    gs = corpus_gen.statistics(sample, V, top, sample=sample[0].size)
    rc, gc = rs.pop("_co"), gs.pop("_co")
    iu = np.triu_indices(top.size, 1)
    # whole-collection figures: every document's length, every term's DF (from the merged index)
    all_lens = np.concatenate(lens)
    q = [0.01, 0.1, 0.5, 0.9, 0.99]
    df = np.diff(SparseIndex.load(index_dir(args.docs), mmap=True).term_postings()[0])
    dfn = np.sort(df[df > 0])[::-1] / all_lens.size
    gs.update(
        {
            "docs": int(all_lens.size),
            "postings": int(all_lens.sum()),
            "distinct_terms": int((df > 0).sum()),
            "nnz_per_doc_mean": float(all_lens.mean()),
            "nnz_per_doc_quantiles": dict(zip(map(str, q), np.quantile(all_lens, q).tolist(), strict=False)),
            "df_over_n_at_rank": {k: float(dfn[int(k) - 1]) for k in rs["df_over_n_at_rank"]},  # type: ignore[union-attr]
        }
    )
    st = {
        "real": rs,
        "generated": gs,
        "cooccurrence_top300_pair_frequency_correlation": float(np.corrcoef(rc[iu], gc[iu])[0, 1]),
        "cooccurrence_top300_pmi_correlation": float(np.corrcoef(_pmi(rc, iu), _pmi(gc, iu))[0, 1]),
    }
    md = corpus_gen.to_markdown(st)
    print(md)
    out = Path(args.out)
    (out / f"search.corpus-{args.docs}.json").write_text(json.dumps(st, indent=1))
    (out / f"search.corpus-{args.docs}.md").write_text(
        f"# Generated corpus vs real statistics ({args.docs:,} documents, {len(sizes)} shards)\n\n"
        f"`python benchmarks/search_scale.py stats --docs {args.docs}` ({time.strftime('%Y-%m-%d')}): lengths and "
        f"DF/N over all documents; weights, co-occurrence and duplicates on a sample of {sample[0].size - 1:,} "
        "documents drawn evenly from every shard.\n\n" + md + "\n"
    )
    return st


def _pmi(co: np.ndarray, iu: Tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    d = np.diag(co)
    return np.log((co[iu] + 1e-6) / (d[iu[0]] * d[iu[1]] + 1e-6))


def to_markdown(r: Dict[str, Any]) -> str:
    lines = [
        f"# Search at {r['docs']:,} documents ({r['postings']:,} postings, {r['dtype']}, memory-mapped)",
        "",
        f"`{r['command']}` ({r['date']}); {r['queries']} real SciFact queries ({r['query_terms_mean']:.0f} terms on "
        f"average), top 10, one thread; brute force: scipy float64 per shard.",
        "",
        "| contestant | queries | p50 ms | p90 ms | p99 ms | mean ms | identical top 10 | recall@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["contestants"]:
        lines.append(
            f"| {c['name']} | {c['queries']} | {c['p50_ms']:.2f} | {c['p90_ms']:.2f} | {c['p99_ms']:.2f} | "
            f"{c['mean_ms']:.2f} | {c['identical_top10_vs_brute_force']}/{c['queries']} | "
            f"{c['recall@10_vs_brute_force']:.3f} |"
        )
    b = r["bytes_per_posting"]
    lines += [
        "",
        f"- bytes per posting: postings {b['postings']:.2f}, blocks {b['blocks']:.2f}, dense rows {b['dense']:.2f}",
        f"- mmap load {r['mmap_load_s']:.2f} s, first search {r['first_search_s']:.2f} s; blocks scored "
        f"{r['blocks_scored_fraction_mean']:.2%} on average, {r['gave_up_fraction']:.1%} of queries scan; "
        f"peak RSS {r['rss_peak_gb']:.1f} GB",
    ]
    if "warm_pass_s" in r:
        lines.append(
            f"- an untimed pass over the queries first ({r['warm_pass_s']:.1f} s: the page cache after the brute "
            f"force); major page faults while timing: {r['major_page_faults_timed']:,}"
        )
    if "build" in r:
        bd = r["build"]
        lines.append(
            f"- build: {bd['shards']} shards, postings {sum(bd['shard_postings_s']):.0f} s, reordering "
            f"{sum(bd['shard_reorder_s']):.0f} s in all (one core each; {min(bd['shard_reorder_s']):.0f}-"
            f"{max(bd['shard_reorder_s']):.0f} s per shard), merge + blocks {bd['merge_and_blocks_s']:.0f} s, "
            f"{bd['disk_bytes'] / 1e9:.1f} GB on disk"
        )
    return "\n".join(lines) + "\n"


def main(argv: "List[str] | None" = None) -> None:
    global SHARD_DOCS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("shards")
    s.add_argument("--docs", type=int, default=8_800_000)
    s.add_argument("--step", choices=("generate", "index", "all"), default="all")
    s.add_argument("--reverse", action="store_true", help="index the shards last first (a second process)")
    m = sub.add_parser("merge")
    m.add_argument("--docs", type=int, default=8_800_000)
    m.add_argument("--block-size", type=int, default=16)
    b = sub.add_parser("bench")
    b.add_argument("--docs", type=int, default=8_800_000)
    b.add_argument("--queries", type=int, default=300)
    b.add_argument("--scan-queries", type=int, default=50, help="queries for the exhaustive scan (slow)")
    b.add_argument("--accuracies", default="0.9,0.8")
    b.add_argument("--out", default=str(corpus_gen.REPO / "benchmarks" / "results"))
    st = sub.add_parser("stats")
    st.add_argument("--docs", type=int, default=8_800_000)
    st.add_argument("--sample", type=int, default=200_000, help="documents sampled (evenly over the shards)")
    st.add_argument("--out", default=str(corpus_gen.REPO / "benchmarks" / "results"))
    for p in (s, m, b, st):
        p.add_argument("--shard-docs", type=int, default=1_000_000, help="documents per shard")
    args = ap.parse_args(argv)
    SHARD_DOCS = args.shard_docs
    if args.cmd == "shards":
        cmd_shards(args)
    elif args.cmd == "merge":
        cmd_merge(args)
    elif args.cmd == "stats":
        cmd_stats(args)
    else:
        cmd_bench(args)


if __name__ == "__main__":
    main()
