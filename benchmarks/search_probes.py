"""Why the exact search cannot prune on the benchmark collection: two probes behind docs/search.md.

    python benchmarks/search_probes.py maxscore --docs 1000000 --queries 12
    python benchmarks/search_probes.py reorder --docs 200000 --queries 40

``maxscore``: for each real query, with the true 10th score known in advance (from the exhaustive search), the share
of the query's postings held by MaxScore's "essential" terms (the terms left once the lowest upper bounds that sum
below that score are set aside): the postings a MaxScore search must still scan, at best.

``reorder``: block-max search after reordering the documents (none; sorted by their two heaviest terms; sorted by a
24-bit random-projection signature): share of the blocks scored, share of the queries where the bounds gave up, p50,
and that the results equal the exhaustive search.
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


def load(n_docs: int, n_queries: int):
    real, gen, V = corpus_gen.corpus(n_docs)
    qip, qind, qval = real["scifact-queries-test"][:3]  # type: ignore[index]
    queries = [
        SparseVector(qind[qip[i] : qip[i + 1]].astype(np.int32), qval[qip[i] : qip[i + 1]].astype(np.float32))
        for i in range(n_queries)
    ]
    ip, ind, val = (np.asarray(a) for a in gen)
    return ip, ind, val, V, queries


def maxscore(args: argparse.Namespace) -> None:
    ip, ind, val, V, queries = load(args.docs, args.queries)
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
    ip, ind, val, V, queries = load(args.docs, args.queries)
    N = ip.size - 1
    lens = np.diff(ip)
    rows = np.repeat(np.arange(N), lens)
    o = np.lexsort((-val, rows))  # each document's postings, heaviest first
    pos = np.arange(o.size) - np.repeat(ip[:-1], lens)
    top = np.full((N, 2), -1, np.int64)
    first = pos < 2
    top[rows[o][first], pos[first]] = ind[o][first]
    rng = np.random.default_rng(0)
    R = rng.standard_normal((V, 24)).astype(np.float32)
    bits = np.stack([np.bincount(rows, weights=R[ind, c] * val, minlength=N) > 0 for c in range(24)], 1)
    signature = (bits.astype(np.int64) << np.arange(24)).sum(1)
    orders = {
        "arbitrary": np.arange(N),
        "two heaviest terms": np.lexsort((top[:, 1], top[:, 0])),
        "random-projection signature": np.argsort(signature, kind="stable"),
    }
    for name, order in orders.items():
        nl = lens[order]
        nip = np.zeros(N + 1, np.int64)
        np.cumsum(nl, out=nip[1:])
        src = np.repeat(ip[order] - nip[:-1], nl) + np.arange(nip[-1])
        ix = SparseIndex.from_csr(nip, ind[src], val[src], vocab_size=V)
        ix.build_blocks(args.block_size)
        stats = [ix.search_stats(q, 10) for q in queries]
        same = all(ix.search(q, k=10) == ix.search(q, k=10, exhaustive=True) for q in queries)
        lat = []
        for q in queries:
            t = time.perf_counter()
            ix.search(q, k=10)
            lat.append(time.perf_counter() - t)
        print(
            f"{name}: blocks scored {np.mean([s['blocks_scored'] / s['blocks'] for s in stats]):.4f}, "
            f"gave up {np.mean([s['gave_up'] for s in stats]):.3f} of the queries, "
            f"p50 {1000 * np.median(lat):.1f} ms, same as exhaustive: {same}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=["maxscore", "reorder"])
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--block-size", type=int, default=64)
    args = ap.parse_args()
    maxscore(args) if args.probe == "maxscore" else reorder(args)


if __name__ == "__main__":
    main()
