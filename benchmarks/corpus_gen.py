"""Benchmark corpus generator: distinct synthetic SPLADE documents with the statistics of real ones.

    python benchmarks/corpus_gen.py --docs 1000000            # generate (cached) + statistics check
    python benchmarks/corpus_gen.py --docs 20000 --stats-only

Real vectors: splade-tiny document vectors of every corpus at hand (SciFact 5,183 docs, belebele-ko 488 docs; 256
tokens) and the real SciFact test queries (300; 64 tokens), encoded once and cached under ``.cache/search-corpus``.

Generation (vectorised, in chunks of 200,000 documents, written straight to ``.npy`` files): for each synthetic
document draw a real *seed* document (uniformly) and one of its 8 nearest real neighbours (cosine of the SPLADE
vectors) as a *donor*. Terms of both are kept (seed weight); each seed-only term is kept with probability
``1 - drop`` (0.3); the donor's terms that the seed lacks are added with the probability that restores the seed's
length in expectation. So the non-zeros per document, each term's document frequency relative to N and the
co-occurrence of terms (which come from real documents that are near each other) are kept. Every weight is
multiplied by a lognormal jitter (sigma 0.15). Documents are emitted in random order (no clustering by seed).
The check reports, side by side for the real and the generated collection: non-zeros per document, the DF/N curve,
the weight distribution, the co-occurrence of the 300 most frequent terms (correlation of the pair frequencies and
of their PMI), the fraction of exact duplicates and the overlap of each document with its seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
CACHE = REPO / ".cache" / "search-corpus"
DATASETS = Path(os.environ.get("SPLADE_ONNX_DATASETS", str(REPO.parent / "shared" / "datasets")))
CORPORA = ("scifact", "belebele-ko")
CSR = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _vecs_to_csr(vecs) -> CSR:
    indptr = np.zeros(len(vecs) + 1, np.int64)
    np.cumsum([len(v.indices) for v in vecs], out=indptr[1:])
    indices = np.concatenate([v.indices for v in vecs]).astype(np.int32)
    values = np.concatenate([v.values for v in vecs]).astype(np.float32)
    return indptr, indices, values


def real_vectors(model: str = str(REPO / "artifacts" / "splade-tiny")) -> Dict[str, object]:
    """Real document vectors of every corpus, the SciFact test queries (and train queries), cached by model sha."""
    from splade_onnx import Expander
    from splade_onnx.evaluate import load_beir

    exp = None
    man = json.loads((Path(model) / "splade_onnx.json").read_text())
    tag = str(
        man.get("model_data_sha256")
        or man.get("model_sha256")
        or hashlib.sha256(json.dumps(man, sort_keys=True).encode()).hexdigest()
    )[:12]
    out: Dict[str, object] = {"vocab_size": None}
    CACHE.mkdir(parents=True, exist_ok=True)
    for name, split, kind in [(c, "test", "docs") for c in CORPORA] + [
        ("scifact", "test", "queries"),
        ("scifact", "train", "queries"),
    ]:
        f = CACHE / f"{name}-{kind}-{split if kind == 'queries' else 'all'}-{tag}.npz"
        if not f.is_file():
            if exp is None:
                exp = Expander(model)
            data = load_beir(str(DATASETS / name), split)
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kind == "docs":
                    vecs = exp.encode_documents(data.doc_texts, max_length=256)
                    ids = data.doc_ids
                else:
                    vecs = exp.encode_queries(data.query_texts, max_length=64)
                    ids = data.query_ids
            ip, ind, val = _vecs_to_csr(vecs)
            np.savez(f, indptr=ip, indices=ind, values=val, ids=np.array(ids), vocab_size=exp.vocab_size)
            print(f"encoded {name} {kind} ({split}): {len(ids)} in {time.perf_counter() - t:.0f}s", flush=True)
        z = np.load(f, allow_pickle=False)
        out[f"{name}-{kind}-{split}" if kind == "queries" else f"{name}-docs"] = (
            z["indptr"],
            z["indices"],
            z["values"],
            [str(x) for x in z["ids"]],
        )
        out["vocab_size"] = int(z["vocab_size"])
    return out


def merged_real_docs(real: Dict[str, object]) -> CSR:
    parts = [real[f"{c}-docs"] for c in CORPORA]
    indptr = [np.zeros(1, np.int64)]
    off = 0
    for ip, _, _, _ in parts:  # type: ignore[misc]
        indptr.append(ip[1:] + off)
        off += int(ip[-1])
    return (
        np.concatenate(indptr),
        np.concatenate([p[1] for p in parts]),  # type: ignore[index]
        np.concatenate([p[2] for p in parts]),
    )  # type: ignore[index]


def neighbours(csr: CSR, V: int, m: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """The m nearest real documents of each (cosine, itself excluded) and how many terms each shares with it."""
    import scipy.sparse as sp

    ip, ind, val = csr
    n = len(ip) - 1
    D = sp.csr_matrix((val.astype(np.float32), ind, ip), shape=(n, V))
    norm = np.sqrt(np.asarray(D.multiply(D).sum(axis=1)).ravel()) + 1e-12
    Dn = sp.diags(1 / norm) @ D
    S = (Dn @ Dn.T).toarray()
    np.fill_diagonal(S, -1)
    nb = np.argsort(-S, axis=1)[:, :m].astype(np.int32)
    B = (D > 0).astype(np.float32)
    ov = (B @ B.T).toarray()
    shared = np.take_along_axis(ov, nb, axis=1).astype(np.int32)
    return nb, shared


def generate(
    csr: CSR,
    V: int,
    n_docs: int,
    out_dir: Path,
    seed: int = 0,
    drop: float = 0.3,
    sigma: float = 0.15,
    chunk: int = 200_000,
) -> CSR:
    """Generate ``n_docs`` documents into ``out_dir`` (indptr.npy int64, indices.npy int32, values.npy float32, and
    seeds.npy int32: the real document each one descends from, which only the probes read)."""
    ip, ind, val = csr
    lens = np.diff(ip)
    nb, shared = neighbours(csr, V)
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts_ip: List[np.ndarray] = []
    parts_seed: List[np.ndarray] = []
    tmp_ind = out_dir / "indices.tmp"
    tmp_val = out_dir / "values.tmp"
    total = 0
    with open(tmp_ind, "wb") as fi, open(tmp_val, "wb") as fv:
        for a in range(0, n_docs, chunk):
            c = min(chunk, n_docs - a)
            s = rng.integers(0, len(lens), c)
            parts_seed.append(s.astype(np.int32))
            j = rng.integers(0, nb.shape[1], c)
            d = nb[s, j]
            # seed postings, each kept with prob 1 - drop
            Ls = lens[s]
            rs = np.repeat(np.arange(c), Ls)
            src = np.repeat(ip[s] - np.cumsum(np.concatenate([[0], Ls[:-1]])), Ls) + np.arange(int(Ls.sum()))
            # donor postings
            Ld = lens[d]
            sh = shared[s, j]
            rd = np.repeat(np.arange(c), Ld)
            srd = np.repeat(ip[d] - np.cumsum(np.concatenate([[0], Ld[:-1]])), Ld) + np.arange(int(Ld.sum()))
            # concat seed then donor, sort stably by (row, term): a term of both comes twice, seed first
            row = np.concatenate([rs, rd])
            term = np.concatenate([ind[src], ind[srd]])
            w = np.concatenate([val[src], val[srd]])
            from_seed = np.concatenate([np.ones(src.size, bool), np.zeros(srd.size, bool)])
            key = row.astype(np.int64) * V + term
            o = np.argsort(key, kind="stable")
            key, w, row, term, from_seed = key[o], w[o], row[o], term[o], from_seed[o]
            first = np.ones(key.size, bool)
            first[1:] = key[1:] != key[:-1]
            both = np.zeros(key.size, bool)
            both[:-1] = first[:-1] & ~first[1:]  # a seed posting whose term the donor has too
            # terms the seed and the donor share are kept (with the seed's weight); a seed-only term is kept with
            # prob 1 - drop; a donor-only term is added with the prob that restores the seed's length in
            # expectation, drop * (L_seed - shared) / (L_donor - shared)
            p_add = np.minimum(1.0, drop * (Ls - sh) / np.maximum(Ld - sh, 1))
            u = rng.random(key.size)
            seed_only = first & from_seed & ~both
            donor_only = first & ~from_seed
            m = (first & both) | (seed_only & (u >= drop)) | (donor_only & (u < p_add[row]))
            row, term, w = row[m], term[m], w[m]
            w = (w * rng.lognormal(0.0, sigma, w.size)).astype(np.float32)
            cnt = np.bincount(row, minlength=c)
            parts_ip.append(cnt)
            term.astype(np.int32).tofile(fi)
            w.tofile(fv)
            total += w.size
            print(f"  generated {a + c:,}/{n_docs:,} docs ({total:,} postings)", flush=True)
    indptr = np.zeros(n_docs + 1, np.int64)
    np.cumsum(np.concatenate(parts_ip), out=indptr[1:])
    np.save(out_dir / "indptr.npy", indptr)
    np.save(out_dir / "seeds.npy", np.concatenate(parts_seed))  # each document's real seed (probes only)
    for tmp, name, dt in ((tmp_ind, "indices", np.int32), (tmp_val, "values", np.float32)):
        arr = np.memmap(tmp, dtype=dt, mode="r")
        np.save(out_dir / f"{name}.npy", arr)
        del arr
        tmp.unlink()
    return load_generated(out_dir)


def load_generated(out_dir: Path, mmap: bool = True) -> CSR:
    mode = "r" if mmap else None
    return (
        np.load(out_dir / "indptr.npy"),
        np.load(out_dir / "indices.npy", mmap_mode=mode),
        np.load(out_dir / "values.npy", mmap_mode=mode),
    )


def corpus(n_docs: int, seed: int = 0, model: str = str(REPO / "artifacts" / "splade-tiny")):
    """(real, generated CSR, vocab_size): generated on first use, then read from the cache (memory-mapped)."""
    real = real_vectors(model)
    V = int(real["vocab_size"])  # type: ignore[arg-type]
    out_dir = CACHE / f"gen-{n_docs}-s{seed}"
    if (out_dir / "values.npy").is_file():
        return real, load_generated(out_dir), V
    t = time.perf_counter()
    gen = generate(merged_real_docs(real), V, n_docs, out_dir, seed=seed)
    (out_dir / "generate.json").write_text(json.dumps({"seconds": time.perf_counter() - t}))
    return real, gen, V


# ------------------------------------------------------------------------------------------------ statistics
def statistics(csr: CSR, V: int, top_terms: np.ndarray, sample: int = 200_000, seed: int = 1) -> Dict[str, object]:
    """Statistics of a collection (document-level ones on a random sample of at most ``sample`` documents)."""
    import scipy.sparse as sp

    ip, ind, val = csr
    n = len(ip) - 1
    lens = np.diff(ip)
    df = np.zeros(V, np.int64)
    step = 20_000_000
    for a in range(0, int(ip[-1]), step):
        df += np.bincount(np.asarray(ind[a : a + step]), minlength=V)
    dfn = np.sort(df[df > 0])[::-1] / n
    ranks = [1, 10, 100, 1000, 3000, 10000]
    wsample = np.asarray(val[:: max(1, int(ip[-1]) // 2_000_000)])
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    L = lens[rows]
    src = np.repeat(ip[rows] - np.cumsum(np.concatenate([[0], L[:-1]])), L) + np.arange(int(L.sum()))
    r_ind = np.asarray(ind[src])
    r_val = np.asarray(val[src])
    sub_ip = np.concatenate([[0], np.cumsum(L)])
    B = sp.csr_matrix((np.ones(r_ind.size, np.float32), r_ind, sub_ip), shape=(rows.size, V))[:, top_terms]
    co = (B.T @ B).toarray() / rows.size
    # exact duplicates among the sampled documents (terms and weights rounded to 1e-3)
    h = [
        hash((r_ind[sub_ip[i] : sub_ip[i + 1]].tobytes(), np.round(r_val[sub_ip[i] : sub_ip[i + 1]], 3).tobytes()))
        for i in range(rows.size)
    ]
    q = [0.01, 0.1, 0.5, 0.9, 0.99]
    return {
        "docs": n,
        "postings": int(ip[-1]),
        "distinct_terms": int((df > 0).sum()),
        "nnz_per_doc_mean": float(lens.mean()),
        "nnz_per_doc_quantiles": dict(zip(map(str, q), np.quantile(lens, q).tolist(), strict=False)),
        "df_over_n_at_rank": {str(r): float(dfn[r - 1]) if r <= dfn.size else 0.0 for r in ranks},
        "weight_quantiles": dict(zip(map(str, q), np.quantile(wsample, q).tolist(), strict=False)),
        "weight_mean": float(wsample.mean()),
        "duplicate_fraction": 1.0 - len(set(h)) / len(h),
        "_co": co,
    }


def check(real_csr: CSR, gen_csr: CSR, V: int) -> Dict[str, object]:
    rip, rind, _ = real_csr
    df = np.bincount(rind, minlength=V)
    top = np.argsort(-df)[:300]
    rs = statistics(real_csr, V, top)
    gs = statistics(gen_csr, V, top)
    rc, gc = rs.pop("_co"), gs.pop("_co")
    iu = np.triu_indices(top.size, 1)

    # pointwise mutual information of the frequent pairs: co-occurrence beyond what the DFs explain
    def pmi(co):
        d = np.diag(co)
        return np.log((co[iu] + 1e-6) / (d[iu[0]] * d[iu[1]] + 1e-6))

    return {
        "real": rs,
        "generated": gs,
        "cooccurrence_top300_pair_frequency_correlation": float(np.corrcoef(rc[iu], gc[iu])[0, 1]),
        "cooccurrence_top300_pmi_correlation": float(np.corrcoef(pmi(rc), pmi(gc))[0, 1]),
    }


def seed_overlap(real_csr: CSR, V: int, n: int = 2000, seed: int = 5) -> float:
    """Mean Jaccard overlap of a generated document's terms with its seed's (regenerates n documents in memory)."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=str(CACHE)) as d:
        rng = np.random.default_rng(seed)
        st = rng.bit_generator.state
        g = generate(real_csr, V, n, Path(d), seed=seed, chunk=n)
        rng.bit_generator.state = st
        s = rng.integers(0, len(real_csr[0]) - 1, n)
        rip, rind, _ = real_csr
        gip, gind, _ = g
        jac = []
        for i in range(n):
            a = set(rind[rip[s[i]] : rip[s[i] + 1]].tolist())
            b = set(np.asarray(gind[gip[i] : gip[i + 1]]).tolist())
            jac.append(len(a & b) / max(1, len(a | b)))
        return float(np.mean(jac))


def to_markdown(st: Dict[str, object]) -> str:
    r, g = st["real"], st["generated"]  # type: ignore[index]
    rows = [
        ("documents", f"{r['docs']:,}", f"{g['docs']:,}"),
        ("postings", f"{r['postings']:,}", f"{g['postings']:,}"),
        ("distinct terms", r["distinct_terms"], g["distinct_terms"]),
        ("non-zeros/doc mean", f"{r['nnz_per_doc_mean']:.1f}", f"{g['nnz_per_doc_mean']:.1f}"),
    ]
    for qk in r["nnz_per_doc_quantiles"]:
        rows.append(
            (f"non-zeros/doc q{qk}", f"{r['nnz_per_doc_quantiles'][qk]:.0f}", f"{g['nnz_per_doc_quantiles'][qk]:.0f}")
        )
    for rk in r["df_over_n_at_rank"]:
        rows.append(
            (f"DF/N of the rank-{rk} term", f"{r['df_over_n_at_rank'][rk]:.4f}", f"{g['df_over_n_at_rank'][rk]:.4f}")
        )
    rows.append(("weight mean", f"{r['weight_mean']:.3f}", f"{g['weight_mean']:.3f}"))
    for qk in r["weight_quantiles"]:
        rows.append((f"weight q{qk}", f"{r['weight_quantiles'][qk]:.3f}", f"{g['weight_quantiles'][qk]:.3f}"))
    rows.append(
        ("exact duplicate documents (sample)", f"{r['duplicate_fraction']:.4f}", f"{g['duplicate_fraction']:.4f}")
    )
    lines = ["| statistic | real (SciFact + belebele-ko) | generated |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [
        "",
        f"Co-occurrence of the 300 most frequent real terms, real vs generated: pair-frequency correlation "
        f"{st['cooccurrence_top300_pair_frequency_correlation']:.3f}, PMI correlation "
        f"{st['cooccurrence_top300_pmi_correlation']:.3f}.",
    ]
    if "seed_jaccard" in st:
        lines.append(f"Mean Jaccard overlap of a generated document's terms with its seed's: {st['seed_jaccard']:.3f}.")
    return "\n".join(lines)


def main(argv=None) -> Dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    real, gen, V = corpus(args.docs, args.seed)
    rcsr = merged_real_docs(real)
    t = time.perf_counter()
    st = check(rcsr, gen, V)
    st["seed_jaccard"] = seed_overlap(rcsr, V)
    st["check_s"] = time.perf_counter() - t
    gj = CACHE / f"gen-{args.docs}-s{args.seed}" / "generate.json"
    if gj.is_file():
        st["generate_s"] = json.loads(gj.read_text())["seconds"]
    md = to_markdown(st)
    print(md)
    out = Path(args.out)
    (out / f"search.corpus-{args.docs}.json").write_text(json.dumps(st, indent=1))
    (out / f"search.corpus-{args.docs}.md").write_text(
        f"# Generated corpus vs real statistics ({args.docs:,} documents)\n\n"
        f"`python benchmarks/corpus_gen.py --docs {args.docs}` ({time.strftime('%Y-%m-%d')})\n\n" + md + "\n"
    )
    return st


if __name__ == "__main__":
    main()
