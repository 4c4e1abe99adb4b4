"""Search at 8.8M documents (MS MARCO's passage count) on this 24 GB machine: a sharded build, then one index.

    python benchmarks/search_scale.py shards --docs 8800000      # generate + index + reorder each shard (cached)
    python benchmarks/search_scale.py merge --docs 8800000       # one uint8 index on disk, with blocks
    python benchmarks/search_scale.py bench --docs 8800000       # latency, checked against brute force

The corpus is the documented generator's (``benchmarks/corpus_gen.py``) in shards of 1M documents, shard ``j``
drawn with seed ``j`` (the 1M benchmark corpus is shard 0): a collection of N documents generated in one go has
the same distribution. Every shard is indexed with uint8 weights on one fixed scale (so the shards' stored
weights are comparable and merge without requantizing), reordered by graph bisection on its own (one core, about
as long as the 1M benchmark's reordering) and saved. ``merge`` concatenates the saved shards term by term
straight into memory-mapped files (never the whole collection in memory), builds the block-max structure over the
merged postings and saves one index. ``bench`` memory-maps it and times exact and approximate block-max search
and the exhaustive scan with the real SciFact queries; brute force is scipy's float64 dot product, one shard at a
time, over the stored (dequantized) weights.

The steps can run in two processes at once (``shards --step generate`` and ``shards --step index``; the second
waits for each shard's corpus).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus_gen  # noqa: E402

from splade_onnx import SparseIndex  # noqa: E402

SHARD_DOCS = 1_000_000
SCALE_DIR = corpus_gen.REPO / ".cache" / "search-scale"


def shard_sizes(n_docs: int, shard_docs: int = SHARD_DOCS) -> List[int]:
    return [min(shard_docs, n_docs - a) for a in range(0, n_docs, shard_docs)]


def weight_scale() -> float:
    """One uint8 scale for every shard: 1.25x the largest weight of shard 0 (the lognormal jitter's tail over
    2 billion draws stays under it), over 255."""
    p = SCALE_DIR / "scale.json"
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
    return SCALE_DIR / f"shard-{j}"


def build_shard(j: int, n: int, scale: float, first_id: int) -> None:
    """Index shard ``j`` (ids ``first_id..first_id+n-1``), reorder and save it; skipped when saved or when another
    process has claimed it."""
    out = shard_dir(j)
    if (out / "index.json").is_file():
        return
    claim = SCALE_DIR / f"shard-{j}.claim"
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


def main(argv: "List[str] | None" = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("shards")
    s.add_argument("--docs", type=int, default=8_800_000)
    s.add_argument("--step", choices=("generate", "index", "all"), default="all")
    s.add_argument("--reverse", action="store_true", help="index the shards last first (a second process)")
    args = ap.parse_args(argv)
    if args.cmd == "shards":
        cmd_shards(args)


if __name__ == "__main__":
    main()
