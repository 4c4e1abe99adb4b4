"""Resident memory while streaming a 20,000-document corpus through Expander.expand_iter.

    python benchmarks/stream_memory.py artifacts/splade-tiny --docs 20000

Documents: SciFact's corpus (5,183 docs) repeated to --docs, read lazily from the jsonl (a generator: the corpus is
never held in memory). Prints VmRSS at the start (after loading the model and a warm-up chunk), every 10%, and at
the end, plus the peak (VmHWM).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field)


def corpus(path: str, n: int):
    def once():
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                yield (d.get("title", "") + " " + d.get("text", "")).strip()

    return itertools.islice(itertools.chain.from_iterable(once() for _ in itertools.count()), n)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--chunk-size", type=int, default=256)
    ap.add_argument(
        "--corpus",
        default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "scifact", "corpus.jsonl"),
    )
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args()
    import warnings

    from splade_onnx import Expander

    warnings.simplefilter("ignore")  # truncation warnings, one per chunk
    e = Expander(a.model)
    list(e.expand_iter(corpus(a.corpus, a.chunk_size), chunk_size=a.chunk_size))  # warm-up: arenas, tokenizer copy
    start = rss_mb()
    print(f"start: RSS {start:.0f} MB (model loaded, one warm-up chunk)")
    t0 = time.perf_counter()
    nnz = 0
    marks = {int(a.docs * k / 10) for k in range(1, 11)}
    samples = []
    for i, v in enumerate(
        e.expand_iter(corpus(a.corpus, a.docs), chunk_size=a.chunk_size, progress=a.progress, total=a.docs), 1
    ):
        nnz += v.nnz
        if i in marks:
            samples.append((i, rss_mb()))
            print(f"{i:>6} docs: RSS {samples[-1][1]:.0f} MB")
    dt = time.perf_counter() - t0
    end = rss_mb()
    print(
        f"end: RSS {end:.0f} MB, peak (VmHWM) {rss_mb('VmHWM'):.0f} MB; growth start->end {end - start:+.0f} MB; "
        f"{a.docs} docs in {dt:.0f} s ({a.docs / dt:.0f} docs/s), mean nnz {nnz / a.docs:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
