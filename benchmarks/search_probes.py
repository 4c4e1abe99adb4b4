"""Probes behind docs/search.md: why the exact search could not prune, and how far the bounds can rank blocks.

    python benchmarks/search_probes.py maxscore --docs 1000000 --queries 12
    python benchmarks/search_probes.py reorder --docs 200000 --queries 40
    python benchmarks/search_probes.py budget --index .cache/ix-1m-bp16b --queries 100

``maxscore``: for each real query, with the true 10th score known in advance (from the exhaustive search), the share
of the query's postings held by MaxScore's "essential" terms (the terms left once the lowest upper bounds that sum
below that score are set aside): the postings a MaxScore search must still scan, at best.

``reorder``: block-max search after reordering the documents (none; sorted by their two heaviest terms; sorted by a
24-bit random-projection signature; by 3 min-hashes of the 20 heaviest terms; a principal-direction bisection tree
over a 64-dimension random projection; and, with ``--oracle``, grouped by the real document each one was generated
from, which no index could know; with ``--bp`` the recursive graph bisection order of
``splade_onnx.index.reorder`` instead of the five cheap orders): share of the blocks scored, share of the queries
where the bounds gave up, p50 against the exhaustive scan, and that the results equal the exhaustive search.
``--oracle`` generates a fresh collection (same seed, same documents)
into a temporary folder to learn each document's origin.

``budget``: on a saved index with blocks (``search_bench.py --keep-index``), the recall@10 and latency of scoring
exactly a fixed number of blocks, those with the best bounds, in one round (no threshold, no further rounds), by
every block's bound and through superblocks: how well the bounds alone rank the blocks that hold the top 10, the
ceiling of any approximate mode that trusts them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_gen  # noqa: E402

from splade_onnx import SparseIndex, SparseVector  # noqa: E402


def load(n_docs: int, n_queries: int, oracle: bool = False):
    real, gen, V = corpus_gen.corpus(n_docs)
    seeds = None
    if oracle:
        import atexit
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp())
        atexit.register(shutil.rmtree, tmp, True)
        gen = corpus_gen.generate(corpus_gen.merged_real_docs(real), V, n_docs, tmp / "gen")
        seeds = np.load(tmp / "gen" / "seeds.npy")
    qip, qind, qval = real["scifact-queries-test"][:3]  # type: ignore[index]
    queries = [
        SparseVector(qind[qip[i] : qip[i + 1]].astype(np.int32), qval[qip[i] : qip[i + 1]].astype(np.float32))
        for i in range(n_queries)
    ]
    ip, ind, val = (np.asarray(a) for a in gen)
    return ip, ind, val, V, queries, seeds


def maxscore(args: argparse.Namespace) -> None:
    ip, ind, val, V, queries, _ = load(args.docs, args.queries)
    ix = SparseIndex.from_csr(ip, ind, val, vocab_size=V)
    seg = ix._segments[0]
    P, W = np.asarray(seg.indptr), np.asarray(seg.weights)
    df = np.diff(P)
    held = np.flatnonzero(df > 0)
    maxw = np.zeros(V)
    maxw[held] = np.maximum.reduceat(W, P[held])
    shares = []
    for i, q in enumerate(queries):
        t, w = q.indices.astype(np.int64), q.values.astype(np.float64)
        theta = ix.search(q, k=10, exhaustive=True)[-1][1]
        ub = w * maxw[t]
        order = np.argsort(ub)
        n_non_essential = int(np.searchsorted(np.cumsum(ub[order]), theta))
        share = df[t[order[n_non_essential:]]].sum() / df[t].sum()
        shares.append(share)
        print(
            f"query {i}: {t.size} terms, 10th score {theta:.1f}, sum of upper bounds {ub.sum():.1f}, "
            f"non-essential terms {n_non_essential}, essential share of postings {share:.2f}"
        )
    print(f"essential share: min {min(shares):.2f}, median {np.median(shares):.2f}, max {max(shares):.2f}")


def reorder(args: argparse.Namespace) -> None:
    ip, ind, val, V, queries, seeds = load(args.docs, args.queries, args.oracle)
    N = ip.size - 1
    lens = np.diff(ip)
    rows = np.repeat(np.arange(N), lens)

    def two_heaviest() -> np.ndarray:
        o = np.lexsort((-val, rows))  # each document's postings, heaviest first
        pos = np.arange(o.size) - np.repeat(ip[:-1], lens)
        top = np.full((N, 2), -1, np.int64)
        first = pos < 2
        top[rows[o][first], pos[first]] = ind[o][first]
        return np.lexsort((top[:, 1], top[:, 0]))

    def signature() -> np.ndarray:
        R = np.random.default_rng(0).standard_normal((V, 24)).astype(np.float32)
        bits = np.stack([np.bincount(rows, weights=R[ind, c] * val, minlength=N) > 0 for c in range(24)], 1)
        return np.argsort((bits.astype(np.int64) << np.arange(24)).sum(1), kind="stable")

    def minhash() -> np.ndarray:
        o = np.lexsort((-val, rows))
        pos = np.arange(o.size) - np.repeat(ip[:-1], lens)
        heavy = o[pos < 20]  # each document's 20 heaviest terms
        rng = np.random.default_rng(0)
        keys = []
        for _ in range(3):
            perm = rng.permutation(V).astype(np.int64)
            mh = np.full(N, V, np.int64)
            np.minimum.at(mh, rows[heavy], perm[ind[heavy]])
            keys.append(mh)
        return np.lexsort(keys[::-1])

    orders = {"arbitrary": lambda: np.arange(N)}
    if not args.oracle_only and not args.bp:
        orders["two heaviest terms"] = two_heaviest
        orders["random-projection signature"] = signature
        orders["3 min-hashes of the 20 heaviest terms"] = minhash
        orders["principal-direction bisection"] = lambda: bisection_order(rows, ind, val, N, V, min(args.block_sizes))
    if args.bp:
        from splade_onnx.index.reorder import bp_order

        def bp() -> np.ndarray:
            t = time.perf_counter()
            o = bp_order(ip, ind, val, V, leaf_size=min(args.block_sizes), max_terms=args.bp_terms)
            print(f"bp_order: {time.perf_counter() - t:.1f} s", flush=True)
            return o

        orders["recursive graph bisection (BP)"] = bp
    if seeds is not None:
        orders["by origin (oracle)"] = lambda: np.argsort(seeds, kind="stable")
    for name, make_order in orders.items():
        order = make_order()
        nl = lens[order]
        nip = np.zeros(N + 1, np.int64)
        np.cumsum(nl, out=nip[1:])
        src = np.repeat(ip[order] - nip[:-1], nl) + np.arange(nip[-1])
        ix = SparseIndex.from_csr(nip, ind[src], val[src], vocab_size=V)
        for bs in args.block_sizes:
            ix.build_blocks(bs)
            stats = [ix.search_stats(q, 10) for q in queries]
            same = all(ix.search(q, k=10) == ix.search(q, k=10, exhaustive=True) for q in queries)
            lat, lat_exh = [], []
            for q in queries:
                t = time.perf_counter()
                ix.search(q, k=10)
                lat.append(time.perf_counter() - t)
                t = time.perf_counter()
                ix.search(q, k=10, exhaustive=True)
                lat_exh.append(time.perf_counter() - t)
            scored = np.mean([s["blocks_scored"] / s["blocks"] for s in stats])
            print(
                f"{name}, blocks of {bs}: blocks scored {scored:.4f}, "
                f"gave up {np.mean([s['gave_up'] for s in stats]):.3f} of the queries, "
                f"p50 {1000 * np.median(lat):.1f} ms (exhaustive scan {1000 * np.median(lat_exh):.1f} ms), "
                f"same as exhaustive: {same}",
                flush=True,
            )


def bisection_order(rows, ind, val, N: int, V: int, leaf: int, dims: int = 64) -> np.ndarray:
    """Recursive halving along each part's principal direction (power iteration) of unit-length 64-dimension random
    projections of the documents, down to parts of ``leaf`` documents."""
    rng = np.random.default_rng(0)
    R = rng.standard_normal((V, dims)).astype(np.float32)
    X = np.stack([np.bincount(rows, weights=R[ind, c] * val, minlength=N) for c in range(dims)], 1)
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-9
    order = np.arange(N)
    parts = [(0, N)]
    while any(b - a > leaf for a, b in parts):
        nxt = []
        for a, b in parts:
            if b - a <= leaf:
                nxt.append((a, b))
                continue
            idx = order[a:b]
            Z = X[idx] - X[idx].mean(0)
            v = Z[np.random.default_rng(a).integers(0, len(Z))].copy()
            for _ in range(4):
                v = Z.T @ (Z @ v)
                v /= np.linalg.norm(v) + 1e-12
            order[a:b] = idx[np.argsort(Z @ v, kind="stable")]
            nxt += [(a, (a + b) // 2), ((a + b) // 2, b)]
        parts = nxt
    return order


def budget(args: argparse.Namespace) -> None:
    if not args.index:
        raise SystemExit("budget needs --index (a saved index with blocks)")
    index = SparseIndex.load(args.index, mmap=True)
    bm = index._block_index()
    if bm is None:
        raise SystemExit(f"{args.index} has no blocks")
    seg = index._segments[0]
    dequant = float(index.scale or 0.0) if index.dtype == "uint8" else None
    ip, ind, val, _ = corpus_gen.real_vectors()["scifact-queries-test"]  # type: ignore[misc]
    queries = [
        (ind[ip[i] : ip[i + 1]].astype(np.int64), val[ip[i] : ip[i + 1]].astype(np.float64))
        for i in range(min(args.queries, len(ip) - 1))
    ]
    bm.entry_map()
    bm.superblocks()
    seed = (np.zeros(0, np.int64), np.zeros(0, np.float64))

    def top(res) -> set:
        o, sc = res[0], res[1]
        return set(o[np.lexsort((o, -sc))[:10]].tolist())

    exact = [top(bm.search_blocks(t, q, 10, seg.docs, seg.weights, dequant, None, seed)) for t, q in queries]
    print(f"{args.index}: {len(queries)} queries, blocks of {bm.block_size}, top 10")
    print("path         blocks  p50 ms  mean ms  recall@10")
    for path in ("search_blocks", "search_superblocks"):
        for budget_blocks in args.budgets:
            lat, rec = [], []
            for (t, q), ex in zip(queries, exact):
                t0 = time.perf_counter()
                # accuracy ~0: after the first round of `first` blocks no block can reach the threshold
                res = getattr(bm, path)(t, q, 10, seg.docs, seg.weights, dequant, None, seed, 1e-9, budget_blocks)
                lat.append(time.perf_counter() - t0)
                rec.append(len(top(res) & ex) / max(1, len(ex)))
            ms = np.array(lat) * 1e3
            name = path.replace("search_", "")
            print(f"{name:12s} {budget_blocks:6d} {np.median(ms):7.2f} {ms.mean():8.2f} {np.mean(rec):10.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=["maxscore", "reorder", "budget"])
    ap.add_argument("--index", help="budget: a saved index with blocks")
    ap.add_argument("--budgets", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024], help="budget: blocks")
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--block-sizes", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--oracle", action="store_true", help="also order by each document's origin (regenerates)")
    ap.add_argument("--oracle-only", action="store_true", help="with --oracle: only the arbitrary and the oracle order")
    ap.add_argument("--bp", action="store_true", help="also the recursive graph bisection order")
    ap.add_argument("--bp-terms", type=int, default=64, help="with --bp: each document's heaviest terms used")
    args = ap.parse_args()
    {"maxscore": maxscore, "reorder": reorder, "budget": budget}[args.probe](args)


if __name__ == "__main__":
    main()
