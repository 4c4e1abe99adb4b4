"""A/B timing of the block-max search: this checkout's ``splade_onnx/index/blocks.py`` against the one of another
git revision, on a saved index with blocks, query by query alternately in one process (so both see the same
machine), checking that both give the same top 10.

    python benchmarks/search_ab.py .cache/ix-1m-bp16b --base a1a822d --queries 300 [--path blocks|superblocks]
    python benchmarks/search_ab.py .cache/ix-1m-bp16b --paths --queries 150   # this checkout: blocks vs superblocks

The queries are the real SciFact test queries of the benchmark corpus (``benchmarks/corpus_gen.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_gen  # noqa: E402
from revision import module_at  # noqa: E402

from splade_onnx import SparseIndex  # noqa: E402


def top10(res: Any) -> Any:
    """The top 10 (ordinals, scores) of a search's candidates; None when it gave up (the caller scans)."""
    ords, scores = res[0], res[1]
    if ords is None:
        return None
    order = np.lexsort((ords, -scores))[:10]
    return ords[order].tolist(), scores[order].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", help="a saved index with blocks (e.g. from search_bench.py --keep-index)")
    ap.add_argument("--base", help="git revision to compare against")
    ap.add_argument("--paths", action="store_true", help="compare this checkout's two search paths instead")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--path", choices=["blocks", "superblocks"], default="blocks")
    args = ap.parse_args()
    if bool(args.base) == args.paths:
        ap.error("give --base REV or --paths")
    index = SparseIndex.load(args.index, mmap=args.path == "superblocks" or args.paths)
    new = index._block_index()
    if new is None:
        raise SystemExit(f"{args.index} has no blocks")
    if args.paths:
        base = new
    else:
        blocks_base = module_at(args.base, "src/splade_onnx/index/blocks.py")
        base = blocks_base.BlockMax(new.block_size, new.n_docs, new.bscale, new.arrays)
    seg = index._segments[0]
    dequant = float(index.scale or 0.0) if index.dtype == "uint8" else None
    ip, ind, val, _ = corpus_gen.real_vectors()["scifact-queries-test"]  # type: ignore[misc]
    queries = [
        (ind[ip[i] : ip[i + 1]].astype(np.int64), val[ip[i] : ip[i + 1]].astype(np.float64)) for i in range(len(ip) - 1)
    ]
    method = "search_superblocks" if args.path == "superblocks" else "search_blocks"
    methods = (
        {"base": "search_blocks", "this": "search_superblocks"} if args.paths else {"base": method, "this": method}
    )
    base._entry_map = new.entry_map()  # the same arrays, so the same map: derived once (1.25 GB at 8.8M documents)
    for bm in (base, new):
        if args.path == "superblocks" or args.paths:
            bm.superblocks()
    seed = (np.zeros(0, np.int64), np.zeros(0, np.float64))
    times: Dict[str, List[float]] = {"base": [], "this": []}
    for i, (terms, qw) in enumerate(queries[: args.queries]):
        got = {}
        pair = [("base", base), ("this", new)]
        for name, bm in pair if i % 2 else pair[::-1]:
            t = time.perf_counter()
            res = getattr(bm, methods[name])(terms, qw, 10, seg.docs, seg.weights, dequant, None, seed)
            times[name].append(time.perf_counter() - t)
            got[name] = top10(res)
        if got["base"] is not None and got["this"] is not None and got["base"] != got["this"]:
            raise SystemExit(f"query {i}: the top 10 differ")
    what = "base = by blocks, this = by superblocks" if args.paths else f"by {args.path}"
    print(f"{args.index}, {len(times['this'])} queries, {what}; the same top 10 for every query")
    for name, ts in times.items():
        ms = np.array(ts) * 1e3
        print(
            f"{name:5s} p50 {np.median(ms):7.2f}  mean {ms.mean():7.2f}  p90 {np.percentile(ms, 90):7.2f}  "
            f"p99 {np.percentile(ms, 99):7.2f} ms"
        )


if __name__ == "__main__":
    main()
