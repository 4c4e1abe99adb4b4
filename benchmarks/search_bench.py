"""Search benchmark: SparseIndex vs scipy brute force (and pyseismic-lsr), on SciFact and a 1M-document index.

    python benchmarks/search_bench.py                 # full run (SciFact + 1,000,000 docs), a few minutes
    python benchmarks/search_bench.py --smoke         # tiny sizes, seconds (run by tests/test_index.py)

The 1M-document collection is resampled from real splade-tiny SciFact document vectors: each synthetic document copies
a real one's weights (x lognormal jitter, sigma 0.1) and maps its terms through one of 64 random permutations that only
swap terms of similar document frequency (buckets of 8 by DF rank), so lengths, term-frequency and weight statistics
are kept and no row holds a duplicate term. Queries are real SciFact test queries. All timings are single-process
numbers from one run; ratios are what to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from splade_onnx import Expander, SparseIndex  # noqa: E402
from splade_onnx.evaluate import load_beir, score_run  # noqa: E402


def encode_cached(exp, texts, max_length, cache: Path):
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return z["indptr"], z["indices"], z["values"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vecs = exp.expand(texts, max_length=max_length)
    indptr = np.zeros(len(vecs) + 1, np.int64)
    np.cumsum([len(v) for v in vecs], out=indptr[1:])
    indices = np.concatenate([v.indices for v in vecs])
    values = np.concatenate([v.values for v in vecs])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, indptr=indptr, indices=indices, values=values)
    return indptr, indices, values


def pct(a, p):
    return float(np.percentile(np.asarray(a) * 1000, p))


def timed_each(fn, items):
    out, lat = [], []
    for it in items:
        t = time.perf_counter()
        out.append(fn(it))
        lat.append(time.perf_counter() - t)
    return out, lat


def scipy_topk(D, qdense, k):
    s = np.asarray(D @ qdense).ravel()
    kk = min(k, s.shape[0])
    part = np.argpartition(-s, kk - 1)[:kk]
    part = part[s[part] > 0]
    return part[np.lexsort((part, -s[part]))], s


def compare(ours, ref_rows, ref_scores, tol=1e-4):
    """ids identical, or differing only where the reference scores tie within tol."""
    same, max_diff = 0, 0.0
    for hits, rows, s in zip(ours, ref_rows, ref_scores):
        ids = [h[0] for h in hits]
        if ids == list(rows):
            same += 1
        else:
            a = np.array([h[1] for h in hits])
            b = s[rows][: len(a)]
            if len(a) != len(b) or np.max(np.abs(a - b)) > tol:
                return same, float("inf")
        if hits:
            max_diff = max(max_diff, float(np.max(np.abs(np.array([h[1] for h in hits]) - s[[h[0] for h in hits]]))))
    return same, max_diff


def resample(indptr, indices, values, n_docs, vocab, rng, chunk=100_000):
    lens = np.diff(indptr)
    df = np.bincount(indices, minlength=vocab)
    rank = np.argsort(-df, kind="stable")  # terms by DF rank
    perms = np.empty((64, vocab), np.int32)
    for j in range(64):
        p = rank.copy().reshape(-1)
        b = 8
        nb = (vocab // b) * b
        blocks = p[:nb].reshape(-1, b)
        blocks = np.take_along_axis(blocks, rng.random(blocks.shape).argsort(axis=1), axis=1)
        p[:nb] = blocks.ravel()
        perm = np.empty(vocab, np.int32)
        perm[rank] = p  # term rank[i] -> p[i] (a term of similar DF)
        perms[j] = perm if j else np.arange(vocab, dtype=np.int32)
    rows = rng.integers(0, len(lens), n_docs)
    which = rng.integers(0, 64, n_docs)
    out_len = lens[rows]
    out_indptr = np.zeros(n_docs + 1, np.int64)
    np.cumsum(out_len, out=out_indptr[1:])
    nnz = int(out_indptr[-1])
    out_ind = np.empty(nnz, np.int32)
    out_val = np.empty(nnz, np.float32)
    for a in range(0, n_docs, chunk):
        b = min(n_docs, a + chunk)
        L = out_len[a:b]
        s0, s1 = out_indptr[a], out_indptr[b]
        src = np.repeat(indptr[rows[a:b]] - (out_indptr[a:b] - s0), L) + np.arange(s1 - s0)
        out_ind[s0:s1] = perms[np.repeat(which[a:b], L), indices[src]]
        out_val[s0:s1] = values[src] * rng.lognormal(0.0, 0.1, s1 - s0).astype(np.float32)
    return out_indptr, out_ind, out_val


def seismic_run(ind_ptr, ind, val, vocab_tokens, qvecs, k, n_docs):
    try:
        import seismic
        from seismic import SeismicDataset, SeismicIndex
    except Exception as e:  # noqa: BLE001
        return {"error": f"pyseismic-lsr not importable: {e}"}
    try:
        st = seismic.get_seismic_string()
        toks = np.array([str(i) for i in range(len(vocab_tokens))], dtype=st)
        ds = SeismicDataset()
        t = time.perf_counter()
        for d in range(n_docs):
            a, b = ind_ptr[d], ind_ptr[d + 1]
            ds.add_document(str(d), toks[ind[a:b]], val[a:b].astype(np.float32))
        idx = SeismicIndex.build_from_dataset(ds)
        build = time.perf_counter() - t
        qc = [toks[q.indices] for q in qvecs]
        qv = [q.values.astype(np.float32) for q in qvecs]
        res, lat = [], []
        for i in range(len(qvecs)):
            t = time.perf_counter()
            r = idx.search(str(i), qc[i], qv[i], k, query_cut=20, heap_factor=0.7)
            lat.append(time.perf_counter() - t)
            res.append([int(x[2]) for x in r])
        return {"build_s": build, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "results": res,
                "params": "defaults, query_cut=20, heap_factor=0.7"}
    except Exception as e:  # noqa: BLE001
        return {"error": f"pyseismic-lsr failed: {type(e).__name__}: {e}"}


def recall_at(approx, exact, k=10):
    r = []
    for a, e in zip(approx, exact):
        e = [h[0] for h in e][:k]
        if e:
            r.append(len(set(a[:k]) & set(e)) / len(e))
    return float(np.mean(r)) if r else float("nan")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "artifacts" / "splade-tiny"))
    ap.add_argument("--dataset", default=os.environ.get("SPLADE_ONNX_DATASETS", str(REPO.parent / "shared" / "datasets"))
                    + "/scifact")
    ap.add_argument("--docs", type=int, default=1_000_000, help="size of the resampled collection")
    ap.add_argument("--queries", type=int, default=100, help="queries timed on the large collection")
    ap.add_argument("--scipy-queries", type=int, default=30, help="queries for the (slow) scipy CSR baseline at scale")
    ap.add_argument("--no-seismic", action="store_true")
    ap.add_argument("--seismic-large", action="store_true", help="also build pyseismic-lsr on the large collection")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    exp = Expander(args.model)
    data = load_beir(args.dataset)
    n_real = 80 if args.smoke else len(data.doc_ids)
    n_q = 20 if args.smoke else len(data.query_ids)
    big = 3000 if args.smoke else args.docs
    cache = REPO / ".cache" / "bench" / f"scifact-{(exp.manifest.model_sha256 or 'x')[:12]}-{n_real}-256.npz"
    t = time.perf_counter()
    ip, ind, val = encode_cached(exp, data.doc_texts[:n_real], 256, cache)
    enc_s = time.perf_counter() - t
    qvecs = exp.encode_queries(data.query_texts[:n_q], max_length=64)
    V = exp.vocab_size
    res = {"machine": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                       "platform": platform.platform()}, "smoke": args.smoke,
           "scifact": {"docs": n_real, "queries": n_q, "doc_encode_s(cached?)": [enc_s, cache.is_file()]}}
    sf = res["scifact"]
    ids = data.doc_ids[:n_real]
    # ---------------------------------------------------------------- SciFact: latency, quantization, scipy, seismic
    D = sp.csr_matrix((val, ind, ip), shape=(n_real, V))
    qd = [q.to_dense(V) for q in qvecs]
    for dtype in ("float32", "float16", "uint8"):
        index = SparseIndex.from_csr(ip, ind, val, ids, vocab_size=V, dtype=dtype)
        hits, lat = timed_each(lambda q: index.search(q, k=100), qvecs)
        t = time.perf_counter()
        index.search(qvecs, k=100)
        batch = time.perf_counter() - t
        m = score_run(data.qrels, {q: h for q, h in zip(data.query_ids[:n_q], hits)})
        sf[dtype] = {"p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "qps_single": n_q / sum(lat),
                     "qps_batch": n_q / batch, "bytes_per_posting": index.nbytes / max(1, index.nnz),
                     "metrics": m}
        if dtype == "float32":
            exact10 = [h[:10] for h in hits]
            ref, lat_s = timed_each(lambda q: scipy_topk(D, q, 100), qd)
            same, diff = compare([[(ids.index(d) if False else index._pos[d], s) for d, s in h] for h in hits],
                                 [r for r, _ in ref], [s for _, s in ref])
            sf["scipy_csr"] = {"p50_ms": pct(lat_s, 50), "p95_ms": pct(lat_s, 95), "identical_queries": same,
                               "max_abs_score_diff": diff}
    base = sf["float32"]["metrics"]["nDCG@10"]
    for dtype in ("float16", "uint8"):
        sf[dtype]["ndcg10_delta_vs_float32"] = sf[dtype]["metrics"]["nDCG@10"] - base
    if not args.no_seismic:
        s = seismic_run(ip, ind, val, range(V), qvecs, 10, n_real)
        if "results" in s:
            s["recall@10_vs_exact"] = recall_at([[ids[i] for i in r] for r in s.pop("results")], exact10)
        sf["seismic"] = s
    # ---------------------------------------------------------------- large resampled collection
    t = time.perf_counter()
    bip, bind, bval = resample(ip, ind, val, big, V, rng)
    gen_s = time.perf_counter() - t
    del D
    t = time.perf_counter()
    index = SparseIndex.from_csr(bip, bind, bval, vocab_size=V, dtype="float32")
    build_s = time.perf_counter() - t
    L = {"docs": big, "postings": index.nnz, "mean_doc_nnz": index.nnz / big, "generate_s": gen_s,
         "build_s": build_s}
    res["large"] = L
    Q = qvecs[: args.queries]
    seg = index._segments[0]
    touched = [int(sum(int(seg.indptr[t + 1] - seg.indptr[t]) for t in q.indices.tolist())) for q in Q]
    L["postings_touched_mean"] = float(np.mean(touched))
    L["postings_touched_fraction"] = float(np.mean(touched)) / index.nnz
    index.search(Q[:3], k=10)  # warm-up
    hits, lat = timed_each(lambda q: index.search(q, k=10), Q)
    L["ours"] = {"p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "qps": len(Q) / sum(lat)}
    t = time.perf_counter()
    index.search(list(Q), k=10)
    L["ours"]["qps_batch_call"] = len(Q) / (time.perf_counter() - t)
    for m_terms in (32, 16, 8):
        ah, alat = timed_each(lambda q: index.search(q, k=10, max_query_terms=m_terms), Q)
        L[f"pruned_{m_terms}_terms"] = {"p50_ms": pct(alat, 50), "p95_ms": pct(alat, 95),
                                        "recall@10_vs_exact": recall_at([[d for d, _ in h] for h in ah], hits)}
    Dbig = sp.csr_matrix((bval, bind, bip), shape=(big, V))
    nq_s = min(len(Q), args.scipy_queries)
    ref, lat_s = timed_each(lambda q: scipy_topk(Dbig, q.to_dense(V), 10), Q[:nq_s])
    same, diff = compare(hits[:nq_s], [r for r, _ in ref], [s for _, s in ref])
    L["scipy_csr"] = {"queries": nq_s, "p50_ms": pct(lat_s, 50), "p95_ms": pct(lat_s, 95),
                      "identical_queries": same, "max_abs_score_diff": diff}
    L["speedup_p50_vs_scipy_csr"] = L["scipy_csr"]["p50_ms"] / L["ours"]["p50_ms"]
    del Dbig
    # scipy with the inverted layout (CSC column slice), the fairer "scipy inverted index"
    C = sp.csc_matrix((np.asarray(seg.weights), np.asarray(seg.docs), np.asarray(seg.indptr)), shape=(big, V))

    def csc_topk(q):
        s = np.asarray(C[:, q.indices] @ q.values.astype(np.float32)).ravel()
        part = np.argpartition(-s, 9)[:10]
        return part[np.lexsort((part, -s[part]))]

    _, lat_c = timed_each(csc_topk, Q)
    L["scipy_csc_column_slice"] = {"p50_ms": pct(lat_c, 50), "p95_ms": pct(lat_c, 95)}
    L["speedup_p50_vs_scipy_csc"] = L["scipy_csc_column_slice"]["p50_ms"] / L["ours"]["p50_ms"]
    del C
    with tempfile.TemporaryDirectory(dir=str(REPO / ".cache")) as d:
        t = time.perf_counter()
        index.save(d)
        L["save_s"] = time.perf_counter() - t
        L["disk_bytes"] = sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file())
        L["disk_bytes_per_posting"] = L["disk_bytes"] / index.nnz
        t = time.perf_counter()
        m_idx = SparseIndex.load(d, mmap=True)
        L["mmap_load_s"] = time.perf_counter() - t
        mh, mlat = timed_each(lambda q: m_idx.search(q, k=10), Q)
        L["mmap_search"] = {"p50_ms": pct(mlat, 50), "p95_ms": pct(mlat, 95), "same_results": mh == hits}
        del m_idx
    for dtype in ("float16", "uint8"):
        q_idx = SparseIndex.from_csr(bip, bind, bval, vocab_size=V, dtype=dtype)
        qh, qlat = timed_each(lambda q: q_idx.search(q, k=10), Q)
        L[dtype] = {"bytes_per_posting": q_idx.nbytes / q_idx.nnz, "p50_ms": pct(qlat, 50),
                    "recall@10_vs_float32": recall_at([[d for d, _ in h] for h in qh], hits)}
        del q_idx
    if args.seismic_large and not args.no_seismic:
        s = seismic_run(bip, bind, bval, range(V), Q, 10, big)
        if "results" in s:
            s["recall@10_vs_exact"] = recall_at(s.pop("results"), hits)
        L["seismic"] = s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "search_smoke" if args.smoke else "search"
    (out / f"{name}.json").write_text(json.dumps(res, indent=1))
    (out / f"{name}.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return res


def to_markdown(r):
    sf, L = r["scifact"], r["large"]
    lines = [f"# Search benchmark ({'smoke' if r['smoke'] else 'full'})", "",
             f"Machine: {r['machine']}", "", f"## SciFact ({sf['docs']} docs, {sf['queries']} queries, top 100)", "",
             "| storage | bytes/posting | p50 ms | p95 ms | q/s (one by one) | q/s (batch call) | nDCG@10 | RR@10 | R@100 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for dt in ("float32", "float16", "uint8"):
        x = sf[dt]
        m = x["metrics"]
        lines.append(f"| {dt} | {x['bytes_per_posting']:.2f} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | "
                     f"{x['qps_single']:.0f} | {x['qps_batch']:.0f} | {m['nDCG@10']:.4f} | {m['RR@10']:.4f} | "
                     f"{m['R@100']:.4f} |")
    s = sf["scipy_csr"]
    lines += ["", f"scipy CSR product + argpartition: p50 {s['p50_ms']:.2f} ms, p95 {s['p95_ms']:.2f} ms; identical "
              f"top-100 in {s['identical_queries']}/{sf['queries']} queries, max |score diff| {s['max_abs_score_diff']:.2e}"]
    if "seismic" in sf:
        lines.append(f"pyseismic-lsr: {json.dumps(sf['seismic'])}")
    lines += ["", f"## Resampled collection: {L['docs']:,} docs, {L['postings']:,} postings "
              f"({L['mean_doc_nnz']:.0f}/doc), top 10", "",
              f"generate {L['generate_s']:.1f}s, build (float32) {L['build_s']:.1f}s; postings touched per query "
              f"{L['postings_touched_mean']:,.0f} ({100 * L['postings_touched_fraction']:.1f}% of all)", "",
              "| method | p50 ms | p95 ms | note |", "|---|---|---|---|",
              f"| SparseIndex (exact, float32) | {L['ours']['p50_ms']:.1f} | {L['ours']['p95_ms']:.1f} | "
              f"{L['ours']['qps']:.1f} q/s |",
              f"| scipy CSR product + argpartition | {L['scipy_csr']['p50_ms']:.1f} | {L['scipy_csr']['p95_ms']:.1f} | "
              f"identical in {L['scipy_csr']['identical_queries']}/{L['scipy_csr']['queries']}, max diff "
              f"{L['scipy_csr']['max_abs_score_diff']:.1e}; ours {L['speedup_p50_vs_scipy_csr']:.1f}x faster |",
              f"| scipy CSC column slice + argpartition | {L['scipy_csc_column_slice']['p50_ms']:.1f} | "
              f"{L['scipy_csc_column_slice']['p95_ms']:.1f} | ours {L['speedup_p50_vs_scipy_csc']:.1f}x faster |"]
    for m in (32, 16, 8):
        x = L[f"pruned_{m}_terms"]
        lines.append(f"| SparseIndex, heaviest {m} query terms (approx.) | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | "
                     f"recall@10 vs exact {x['recall@10_vs_exact']:.3f} |")
    for dt in ("float16", "uint8"):
        x = L[dt]
        lines.append(f"| SparseIndex {dt} ({x['bytes_per_posting']:.2f} B/posting) | {x['p50_ms']:.1f} | | "
                     f"recall@10 vs float32 {x['recall@10_vs_float32']:.3f} |")
    x = L["mmap_search"]
    lines.append(f"| SparseIndex loaded with mmap=True | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} | same results: "
                 f"{x['same_results']} |")
    if "seismic" in L:
        lines.append(f"| pyseismic-lsr | {json.dumps(L['seismic'])} | | |")
    lines += ["", f"save {L['save_s']:.1f}s, {L['disk_bytes'] / 1e6:.0f} MB on disk "
              f"({L['disk_bytes_per_posting']:.2f} B/posting), mmap load {1000 * L['mmap_load_s']:.1f} ms", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
