"""``splade-onnx encode``: the resumable corpus job (:mod:`splade_onnx.jobs.encode`) on the command line."""

from __future__ import annotations

import json
import sys
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register ``encode`` (``index --from-vectors`` is part of ``index``, in :mod:`splade_onnx.cli.search`)."""
    add_encode(sub)


def add_encode(sub: Any) -> None:
    """Register ``encode`` on the subcommand parser ``sub``."""
    p = sub.add_parser(
        "encode",
        help="encode a corpus into Parquet vector shards (resumable; local, Spark or Ray)",
        description="Encode CORPUS (JSONL with _id/title/text, or plain text one document a line) into Parquet shards "
        "(id, indices, values[, text]) plus manifest.json in OUT. Rerun the same command after a crash or a kill: "
        "only unfinished shards are encoded again. Build an index from OUT with `splade-onnx index --from-vectors "
        "OUT`. Needs the [parquet] extra, and [spark] or [ray] for those engines.",
    )
    p.add_argument("corpus")
    p.add_argument("--model", required=True, help="artifact folder or hub repo id")
    p.add_argument("--out", required=True, help="folder for the shards and manifest.json")
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "spark", "ray"],
        help="local: this process; spark: the active SparkSession or local[WORKERS]; ray: RAY_ADDRESS's "
        "cluster or a local one with WORKERS CPUs (default local)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="onnxruntime threads (local), Spark local cores or local Ray CPUs (default: all CPUs)",
    )
    p.add_argument("--shard-size", type=int, default=10000, help="documents per shard (default 10000)")
    p.add_argument("--role", default="document", choices=["document", "query"])
    p.add_argument("--prune", default=None, help="prune each vector, e.g. top_k=64 or max_ratio=0.1")
    p.add_argument("--max-length", type=int, default=None, help="tokens per text (default: the manifest's)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--store-text", action="store_true", help="keep each document's text in a 'text' column")
    p.add_argument("--overwrite", action="store_true", help="discard another job's shards in OUT and start over")
    p.add_argument("--verify", action="store_true", help="on resume, check every written shard's sha256")
    p.add_argument("--spark-master", default=None, help="Spark master URL (default: local[WORKERS,4])")
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_encode)


def _cmd_encode(args: Any) -> int:
    from splade_onnx.jobs.encode import run_encode_job

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {args.shard_size}")
    r = run_encode_job(
        args.corpus,
        args.model,
        args.out,
        engine=args.engine,
        workers=args.workers,
        shard_size=args.shard_size,
        role=args.role,
        prune=args.prune,
        max_length=args.max_length,
        batch_size=args.batch_size,
        store_text=args.store_text,
        overwrite=args.overwrite,
        verify=args.verify,
        progress=not args.no_progress and not args.json and sys.stderr.isatty(),
        spark_master=args.spark_master,
        ray_address=args.ray_address,
    )
    info = {
        "out": r.out,
        "documents": r.documents,
        "shards": r.shards,
        "shards_encoded": r.shards_encoded,
        "shards_kept": r.shards_kept,
        "seconds": round(r.seconds, 3),
        "engine": args.engine,
    }
    if args.json:
        print(json.dumps(info))
    else:
        kept = f", {r.shards_kept} kept from an earlier run" if r.shards_kept else ""
        print(
            f"encoded {r.documents} documents into {r.shards} shard(s) ({r.shards_encoded} written now{kept}) "
            f"in {r.seconds:.1f}s with {args.engine} -> {r.out}"
        )
    return 0
