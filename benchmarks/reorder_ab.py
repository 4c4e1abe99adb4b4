"""A/B timing of the document reordering (graph bisection): this checkout's ``splade_onnx/index/reorder.py`` against
the one of another git revision, on the generated benchmark corpus (``benchmarks/corpus_gen.py``), alternately in one
process, checking that both give the same permutation.

    python benchmarks/reorder_ab.py --base REV --docs 1000000 --reps 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_gen  # noqa: E402
from revision import module_at  # noqa: E402

from splade_onnx.index import reorder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="git revision to compare against")
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--leaf-size", type=int, default=16)
    args = ap.parse_args()
    _, gen, V = corpus_gen.corpus(args.docs)
    ip, ind, val = (np.asarray(a) for a in gen)
    mods = {"base": module_at(args.base, "src/splade_onnx/index/reorder.py"), "this": reorder}
    times: Dict[str, List[float]] = {"base": [], "this": []}
    for rep in range(args.reps):
        orders = {}
        for name in ("base", "this") if rep % 2 == 0 else ("this", "base"):
            t = time.perf_counter()
            orders[name] = mods[name].bp_order(ip, ind, val, V, leaf_size=args.leaf_size)
            times[name].append(time.perf_counter() - t)
        if not np.array_equal(orders["base"], orders["this"]):
            raise SystemExit(f"repetition {rep}: the permutations differ")
        print(f"repetition {rep}: base {times['base'][-1]:.1f} s, this {times['this'][-1]:.1f} s", flush=True)
    print(f"{args.docs:,} documents, the same permutation every time; base {args.base}")
    for name, ts in times.items():
        print(f"{name:5s} " + " / ".join(f"{t:.1f}" for t in ts) + " s")


if __name__ == "__main__":
    main()
