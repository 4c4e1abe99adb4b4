"""Engine overhead: docs/s through Spark (local[N]) and Ray (N actors) vs in-process ``expand`` on the same N cores.

Side by side in one run, interleaved per repetition (in-process, Spark, Ray), on the first ``--docs`` SciFact
documents at ``--max-length`` tokens. Start-up is reported separately: SparkSession creation, the first Spark job
(Python workers + model load), ``ray.init``, and a small Ray job (actor pool start + model load). The Spark figure
is steady state (Python workers are reused between jobs, the model stays loaded); the Ray figure includes the actor
pool's start, since Ray Data starts a new pool per dataset execution.

    nice -n 10 python benchmarks/engines_bench.py --docs 2000 --reps 2
    # -> benchmarks/results/engines.json, engines.md (and the sizing table for docs/at-scale.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from splade_onnx import Expander  # noqa: E402
from splade_onnx.io.corpus import iter_documents  # noqa: E402

SIZES = {"1M": 1_000_000, "8.8M (MS MARCO)": 8_841_823, "100M": 100_000_000}


def load_texts(path: Path, n: int) -> list:
    out = []
    for d in iter_documents(path, limit=n):
        out.append((str(d.id), d.text))
    return out


def same_vectors(table, ref, ids) -> float:
    """Max |diff| of a result table's vectors vs the reference (raises if any indices differ)."""
    pos = {d: k for k, d in enumerate(ids)}
    worst = 0.0
    got_ids = table.column("id").to_pylist()
    assert sorted(got_ids) == sorted(ids), "ids lost or duplicated"
    for d, i, v in zip(got_ids, table.column("indices").to_pylist(), table.column("values").to_pylist(), strict=True):
        r = ref[pos[d]]
        if not np.array_equal(np.asarray(i, np.int32), r.indices):
            raise AssertionError(f"indices differ for {d}")
        worst = max(worst, float(np.abs(np.asarray(v, np.float32) - r.values).max(initial=0.0)))
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "artifacts" / "splade-tiny"))
    ap.add_argument("--corpus", default=str(REPO.parent / "shared" / "datasets" / "scifact" / "corpus.jsonl"))
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "engines"))
    args = ap.parse_args()
    W, L = args.workers, args.max_length
    docs = load_texts(Path(args.corpus), args.docs)
    ids = [d for d, _ in docs]
    texts = [t for _, t in docs]
    print(f"{len(docs)} docs, {L} tokens, {W} workers/cores", flush=True)

    import warnings

    warnings.filterwarnings("ignore", message=".*exceed max_length.*")
    import logging

    logging.getLogger("splade_onnx").setLevel(logging.ERROR)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    startup = {}
    t = time.perf_counter()
    exp = Expander(args.model, threads=W)
    startup["in-process: Expander load"] = time.perf_counter() - t

    # --- Spark
    from pyspark.sql import SparkSession

    from splade_onnx.engines.spark import add_splade_columns as spark_cols

    t = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{W}]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    startup["spark: SparkSession"] = time.perf_counter() - t
    df_all = spark.createDataFrame(docs, "id string, text string").repartition(W * 2).cache()
    df_all.count()
    warm = spark.createDataFrame(docs[:64], "id string, text string").repartition(W)
    t = time.perf_counter()
    spark_cols(warm, args.model, max_length=L).select("id", "indices", "values").toArrow()
    startup["spark: first job, 64 docs (workers + model load)"] = time.perf_counter() - t

    # --- Ray
    import ray
    import ray.data

    from splade_onnx.engines.ray import add_splade_columns as ray_cols

    t = time.perf_counter()
    ray.init(num_cpus=W, include_dashboard=False, log_to_driver=False, object_store_memory=512 * 2**20)
    ray.data.DataContext.get_current().enable_progress_bars = False
    startup["ray: ray.init"] = time.perf_counter() - t
    import pyarrow as pa

    def ray_run(rows):
        step = 128 if len(rows) > 512 else 32
        ds = ray.data.from_items([{"id": d, "text": x} for d, x in rows], override_num_blocks=max(1, len(rows) // step))
        out = ray_cols(ds, args.model, max_length=L, concurrency=W, num_cpus=1, map_batch_size=step)
        t0 = time.perf_counter()
        parts, first = [], None
        # the actors' output as it comes (no further operator: with every CPU held by an actor, a downstream task
        # such as select_columns would wait for the pool to finish)
        for b in out.iter_batches(batch_format="pyarrow", batch_size=None):
            parts.append(b)
            if first is None:
                first = (time.perf_counter() - t0, b.num_rows)
        total = time.perf_counter() - t0
        tab = pa.concat_tables(parts)
        # steady state: the rows after the first batch over the time after it (the pool's start excluded)
        steady = (tab.num_rows - first[1]) / max(total - first[0], 1e-9)
        return tab, steady, first[0]

    t = time.perf_counter()
    ray_run(docs[:64])
    startup["ray: small job, 64 docs (actor pool + model load)"] = time.perf_counter() - t

    exp.encode_documents(texts[:64], max_length=L)  # warm the in-process session
    reps = []
    ref: list = []
    for r in range(args.reps):
        rec = {}
        t = time.perf_counter()
        vecs = []
        for i in range(0, len(texts), 1024):
            vecs.extend(exp.encode_documents(texts[i : i + 1024], max_length=L))
        rec["in-process"] = len(texts) / (time.perf_counter() - t)
        ref = ref or vecs
        t = time.perf_counter()
        tab = spark_cols(df_all, args.model, max_length=L).select("id", "indices", "values").toArrow()
        rec["spark"] = len(texts) / (time.perf_counter() - t)
        rec["spark_max_abs_diff"] = same_vectors(tab, ref, ids)
        t = time.perf_counter()
        tab, steady, first_s = ray_run(docs)
        rec["ray end-to-end"] = len(texts) / (time.perf_counter() - t)
        rec["ray"] = steady
        rec["ray first batch s"] = first_s
        rec["ray_max_abs_diff"] = same_vectors(tab, ref, ids)
        rec["spark/in-process"] = rec["spark"] / rec["in-process"]
        rec["ray/in-process"] = rec["ray"] / rec["in-process"]
        rec["ray end-to-end/in-process"] = rec["ray end-to-end"] / rec["in-process"]
        print(f"rep {r}: " + ", ".join(f"{k} {v:.4g}" for k, v in rec.items()), flush=True)
        reps.append(rec)
    ray.shutdown()
    spark.stop()

    med = {k: statistics.median(x[k] for x in reps) for k in reps[0]}
    # sizing: per-core docs/s of in-process expand, from benchmarks/results/bench.json (2 cores, 2 threads)
    bench = json.loads((REPO / "benchmarks" / "results" / "bench.json").read_text())
    per_core = {}
    for shape, label in (("tiny", "splade-tiny"), ("base", "bert-base (110M)")):
        for prec in ("fp32", "int8"):
            vals = [rep[f"splade-onnx {prec}"]["docs_per_s"] for rep in bench["shapes"][shape]["reps"]]
            per_core[f"{label} {prec}"] = statistics.median(vals) / bench["machine"]["cpus"]
    eff = min(1.0, med["spark/in-process"], med["ray/in-process"])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "nice -n 10 python benchmarks/engines_bench.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
        "docs": len(docs),
        "max_length": L,
        "workers": W,
        "model": os.path.basename(args.model.rstrip("/")),
        "startup_s": startup,
        "reps": reps,
        "median": med,
        "per_core_docs_per_s": per_core,
        "engine_efficiency_used": eff,
        "per_core_source": "benchmarks/results/bench.json (in-process splade-onnx, batch 32, 256 tokens, median of "
        "reps / cpus)",
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Run {result['date']}, {len(docs)} SciFact docs at {L} tokens, {W} cores, {args.reps} repetition(s) "
        f"interleaved, medians. Command: `{result['command']}`",
        "",
        "| path | docs/s | vs in-process | max abs diff vs expand |",
        "|---|---|---|---|",
        f"| in-process expand ({W} threads) | {med['in-process']:.1f} | 1.00 | 0 |",
        f"| Spark local[{W}] mapInArrow | {med['spark']:.1f} | {med['spark/in-process']:.2f} | "
        f"{med['spark_max_abs_diff']:.1e} |",
        f"| Ray Data, {W} actors (after the first batch) | {med['ray']:.1f} | {med['ray/in-process']:.2f} | "
        f"{med['ray_max_abs_diff']:.1e} |",
        f"| Ray Data, {W} actors, end to end (actor pool start included) | {med['ray end-to-end']:.1f} | "
        f"{med['ray end-to-end/in-process']:.2f} | |",
        "",
        "Per repetition (spark/in-process, ray/in-process, ray end-to-end/in-process): "
        + "; ".join(
            f"{x['spark/in-process']:.2f}, {x['ray/in-process']:.2f}, {x['ray end-to-end/in-process']:.2f}"
            for x in reps
        ),
        "",
        f"Ray's first output batch came {med['ray first batch s']:.1f} s after the start (actor pool start + "
        "model load + one batch).",
        "",
        "Start-up (s): " + "; ".join(f"{k} {v:.1f}" for k, v in startup.items()),
        "",
        f"### Sizing (per-core docs/s from benchmarks/results/bench.json, engine efficiency {eff:.2f} from this run)",
        "",
        "| model | docs/s per core | core-hours 1M | core-hours 8.8M | core-hours 100M | "
        "workers for 8.8M in 24 h | workers for 100M in 24 h |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, pc in per_core.items():
        rate = pc * eff
        ch = {k: n / rate / 3600 for k, n in SIZES.items()}
        w88 = int(np.ceil(ch["8.8M (MS MARCO)"] / 24))
        w100 = int(np.ceil(ch["100M"] / 24))
        lines.append(
            f"| {name} | {pc:.1f} | {ch['1M']:.1f} | {ch['8.8M (MS MARCO)']:.0f} | {ch['100M']:.0f} | {w88} | {w100} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
