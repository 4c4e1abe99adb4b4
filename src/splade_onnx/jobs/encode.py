"""The resumable corpus encode job behind ``splade-onnx encode``.

The corpus (read with :func:`splade_onnx.io.corpus.iter_documents`) is cut, in file order, into shards of
``shard_size`` documents; shard ``k`` is written to ``OUT/part-{k:05d}.parquet`` (columns ``id``, ``indices``,
``values`` and, with ``store_text``, ``text``) and then recorded in ``OUT/manifest.json``, which also holds the
artifact's sha256s, the counts and each shard's sha256. Both are written crash-safely (temporary name, fsync, rename).

A rerun with the same arguments after a crash or a kill re-encodes only the shards the manifest does not record
(a recorded shard whose file is missing or has another size is redone too). Before anything is encoded the whole
corpus is scanned once: duplicate ids are refused (naming the id and both documents), and every shard's ids are
checked against the scan when it comes back from the engine, so no document is lost or duplicated even when Spark
re-runs a failed task or Ray restarts a killed actor.

Engines: ``local`` (this process, ``workers`` onnxruntime threads), ``spark`` (a SparkSession: the active one, or
``local[workers]`` with task retries) and ``ray`` (the cluster at ``RAY_ADDRESS``, or a local one with ``workers``
CPUs; one actor per CPU). The engines only encode; this process reads the corpus and writes the shards.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from splade_onnx.engines import check_role, encode_texts, vectors_to_arrow
from splade_onnx.errors import InputFileError, SpladeOnnxError
from splade_onnx.io.corpus import iter_documents
from splade_onnx.io.parquet import (
    MANIFEST_NAME,
    VECTORS_FORMAT,
    VOCAB_NAME,
    read_json,
    shard_table,
    write_json_atomic,
    write_shard,
)
from splade_onnx.vectors import SparseVector

log = logging.getLogger("splade_onnx")

DocId = Union[str, int]
FORMAT = VECTORS_FORMAT
FORMAT_VERSION = 1
ENGINES = ("local", "spark", "ray")
# what must be equal for a rerun to resume the job recorded in OUT
JOB_KEYS = ("corpus", "model_sha256", "role", "prune", "max_length", "shard_size", "store_text", "id_type", "documents")


class JobError(SpladeOnnxError, RuntimeError):
    """The job cannot start or resume (another job's output in OUT), or an engine returned wrong rows."""


@dataclass
class EncodeJobResult:
    """What one run of :func:`run_encode_job` did."""

    out: str
    documents: int
    shards: int
    shards_encoded: int
    shards_kept: int
    seconds: float
    manifest: Dict[str, Any]


def shard_name(k: int) -> str:
    """File name of shard ``k``."""
    return f"part-{k:05d}.parquet"


def scan_corpus(path: str) -> Tuple[List[DocId], str]:
    """All document ids in file order and their Parquet type (``int64`` when every id is an int, else ``string``:
    ids are then stringified). A duplicate (after that) raises :class:`InputFileError`."""
    raw: List[Any] = []
    all_int = True
    for doc in iter_documents(path):
        raw.append(doc.id)
        if all_int and (isinstance(doc.id, bool) or not isinstance(doc.id, int)):
            all_int = False
    if not raw:
        raise InputFileError("no documents", path)
    ids: List[DocId] = raw if all_int else [str(d) for d in raw]
    first: Dict[DocId, int] = {}
    for k, d in enumerate(ids):
        j = first.setdefault(d, k)
        if j != k:
            raise InputFileError(
                f"duplicate document id {d!r} (documents {j + 1} and {k + 1}); every id must be unique", path
            )
    return ids, ("int64" if all_int else "string")


def _prune_json(prune: Any) -> Optional[List[Any]]:
    from splade_onnx.encode import pruning

    spec = pruning.parse_spec(prune)
    return [spec[0], spec[1]] if spec is not None else None


# ------------------------------------------------------------------------------------------------------ engines
ShardWork = Tuple[int, List[str]]  # (shard number, texts)
Encoded = Tuple[int, List[SparseVector]]


class _Opts:
    def __init__(
        self, model: str, role: str, prune: Any, max_length: Optional[int], batch_size: int, workers: int
    ) -> None:
        self.model, self.role, self.prune, self.max_length = model, role, prune, max_length
        self.batch_size, self.workers = batch_size, workers


def _waves(work: Iterator[ShardWork], docs_per_wave: int) -> Iterator[List[ShardWork]]:
    wave: List[ShardWork] = []
    n = 0
    for item in work:
        wave.append(item)
        n += len(item[1])
        if n >= docs_per_wave:
            yield wave
            wave, n = [], 0
    if wave:
        yield wave


def _regroup(
    wave: List[ShardWork], shard: Sequence[int], pos: Sequence[int], indices: Any, values: Any, engine: str
) -> Iterator[Encoded]:
    """Rows back from an engine -> each shard's vectors in order, checking every (shard, position) came back once."""
    from splade_onnx.engines import arrow_to_vectors

    vecs = arrow_to_vectors(indices, values)
    sizes = {k: len(texts) for k, texts in wave}
    slots: Dict[int, List[Optional[SparseVector]]] = {k: [None] * n for k, n in sizes.items()}
    for s, p, v in zip(shard, pos, vecs, strict=True):
        row = slots.get(s)
        if row is None or not 0 <= p < len(row):
            raise JobError(f"{engine} returned a row for shard {s} position {p}, which was not sent")
        if row[p] is not None:
            raise JobError(f"{engine} returned shard {s} position {p} twice")
        row[p] = v
    for k, _ in wave:
        missing = [p for p, v in enumerate(slots[k]) if v is None]
        if missing:
            raise JobError(f"{engine} lost {len(missing)} document(s) of shard {k} (e.g. position {missing[0]})")
        yield k, slots[k]  # type: ignore[misc]


def _wave_table(wave: List[ShardWork]) -> Any:
    import pyarrow as pa

    shard = [k for k, texts in wave for _ in texts]
    pos = [p for _, texts in wave for p in range(len(texts))]
    text = [t for _, texts in wave for t in texts]
    return pa.table(
        {"shard": pa.array(shard, pa.int32()), "pos": pa.array(pos, pa.int32()), "text": pa.array(text, pa.string())}
    )


def _encode_local(work: Iterator[ShardWork], o: _Opts, on_docs: Callable[[int], None]) -> Iterator[Encoded]:
    from splade_onnx.engines import get_expander

    expander = get_expander(o.model, threads=o.workers)
    for k, texts in work:
        vecs: List[SparseVector] = []
        for i in range(0, len(texts), 1024):
            chunk = texts[i : i + 1024]
            vecs.extend(
                encode_texts(
                    expander, chunk, role=o.role, prune=o.prune, batch_size=o.batch_size, max_length=o.max_length
                )
            )
            on_docs(len(chunk))
        yield k, vecs


def spark_session(workers: int, master: Optional[str] = None) -> Tuple[Any, bool]:
    """The active SparkSession, or a new one (``master``, default ``local[workers,4]``: up to 4 attempts a task);
    returns ``(session, created)``."""
    import sys

    from splade_onnx.engines.spark import import_pyspark

    import_pyspark("--engine spark")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active, False
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master or f"local[{workers},4]").appName("splade-onnx encode")
    builder = builder.config("spark.ui.enabled", "false").config("spark.task.maxFailures", "4")
    return builder.getOrCreate(), True


def _encode_spark(
    work: Iterator[ShardWork], o: _Opts, on_docs: Callable[[int], None], master: Optional[str]
) -> Iterator[Encoded]:
    from splade_onnx.engines.spark import add_splade_columns

    spark, created = spark_session(o.workers, master)
    try:
        sc = spark.sparkContext
        slots = max(1, sc.defaultParallelism)
        for wave in _waves(work, docs_per_wave=max(2048, 512 * slots)):
            rows = [(k, p, t) for k, texts in wave for p, t in enumerate(texts)]
            n_slices = max(1, min(len(rows), slots * 2))
            df = spark.createDataFrame(sc.parallelize(rows, n_slices), "shard int, pos int, text string")
            out = add_splade_columns(
                df, o.model, role=o.role, prune=o.prune, batch_size=o.batch_size, max_length=o.max_length
            ).select("shard", "pos", "indices", "values")
            if hasattr(out, "toArrow"):
                table = out.toArrow()
            else:  # pyspark < 4
                import pyarrow as pa

                table = pa.Table.from_pandas(out.toPandas(), preserve_index=False)
            yield from _regroup(
                wave,
                table.column("shard").to_pylist(),
                table.column("pos").to_pylist(),
                table.column("indices"),
                table.column("values"),
                "spark",
            )
            on_docs(len(rows))
    finally:
        if created:
            spark.stop()


def _encode_ray(
    work: Iterator[ShardWork], o: _Opts, on_docs: Callable[[int], None], address: Optional[str]
) -> Iterator[Encoded]:
    from splade_onnx.engines.ray import add_splade_columns, import_ray

    ray = import_ray("--engine ray")
    import pyarrow as pa

    created = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=o.workers, include_dashboard=False, log_to_driver=False)
        created = True
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", o.workers)))
        for wave in _waves(work, docs_per_wave=max(4096, 1024 * cpus)):
            table = _wave_table(wave)
            step = max(16, math.ceil(table.num_rows / (cpus * 4)))
            blocks = [table.slice(i, step) for i in range(0, table.num_rows, step)]
            ds = ray.data.from_arrow(blocks)
            out = add_splade_columns(
                ds,
                o.model,
                role=o.role,
                prune=o.prune,
                batch_size=o.batch_size,
                max_length=o.max_length,
                concurrency=cpus,
                map_batch_size=step,
            )
            # the actors' output as is: a further operator (select_columns) would wait for CPUs the pool holds
            res = pa.concat_tables(ray.get(out.to_arrow_refs()))
            yield from _regroup(
                wave,
                res.column("shard").to_pylist(),
                res.column("pos").to_pylist(),
                res.column("indices"),
                res.column("values"),
                "ray",
            )
            on_docs(table.num_rows)
    finally:
        if created:
            ray.shutdown()


# --------------------------------------------------------------------------------------------------------- job
def _check_resumable(old: Dict[str, Any], job: Dict[str, Any], out: str) -> None:
    if old.get("format") != FORMAT:
        raise JobError(f"{out}/{MANIFEST_NAME} is not a splade-onnx vectors manifest; use another --out")
    diff = [k for k in JOB_KEYS if old.get("job", {}).get(k) != job[k]]
    if diff:
        k = diff[0]
        raise JobError(
            f"{out} holds vectors of a different job ({k}: {old.get('job', {}).get(k)!r} there, "
            f"{job[k]!r} now); use another --out, or --overwrite to start over"
        )


def run_encode_job(
    corpus: "str | os.PathLike[str]",
    model: "str | os.PathLike[str]",
    out: "str | os.PathLike[str]",
    *,
    engine: str = "local",
    workers: Optional[int] = None,
    shard_size: int = 10000,
    role: str = "document",
    prune: Any = None,
    max_length: Optional[int] = None,
    batch_size: int = 32,
    store_text: bool = False,
    overwrite: bool = False,
    verify: bool = False,
    progress: bool = False,
    spark_master: Optional[str] = None,
    ray_address: Optional[str] = None,
) -> EncodeJobResult:
    """Encode ``corpus`` into Parquet shards under ``out`` (see the module docstring); resumes a previous run.

    Args:
        engine: ``"local"``, ``"spark"`` or ``"ray"``.
        workers: onnxruntime threads (local), ``local[workers]`` (spark) or CPUs of a local Ray (default: the
            machine's CPUs).
        shard_size: documents per shard (the unit that is written, recorded and redone).
        role, prune, max_length, batch_size: as in :func:`splade_onnx.engines.spark.add_splade_columns`.
        store_text: keep each document's text in a ``text`` column.
        overwrite: discard what ``out`` holds (another job's shards) and start over.
        verify: on resume, check each recorded shard's sha256 (not only its size).
        progress: a tqdm bar of documents.
    """
    from splade_onnx.index.sparse_index import model_info

    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ValueError(f"shard_size must be a positive int, got {shard_size!r}")
    check_role(role)
    workers = int(workers or os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    corpus, out = os.fspath(corpus), os.fspath(out)
    prune_json = _prune_json(prune)
    ids, id_type = scan_corpus(corpus)
    n_docs = len(ids)

    from splade_onnx.engines import get_expander

    expander = get_expander(os.fspath(model), threads=workers if engine == "local" else 1)
    model = os.path.abspath(model) if os.path.isdir(model) else os.fspath(model)
    st = os.stat(corpus)
    job = {
        "corpus": {"path": os.path.abspath(corpus), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns},
        "model_sha256": expander.manifest.model_sha256,
        "role": role,
        "prune": prune_json,
        "max_length": max_length,
        "shard_size": shard_size,
        "store_text": bool(store_text),
        "id_type": id_type,
        "documents": n_docs,
    }
    n_shards = math.ceil(n_docs / shard_size)
    os.makedirs(out, exist_ok=True)
    man_path = os.path.join(out, MANIFEST_NAME)
    shards: List[Optional[Dict[str, Any]]] = [None] * n_shards
    if os.path.isfile(man_path) and not overwrite:
        old = read_json(man_path)
        _check_resumable(old, job, out)
        shards = list(old.get("shards") or [None] * n_shards)
    elif not overwrite:
        stray = [f for f in os.listdir(out) if f.startswith("part-") and f.endswith(".parquet")]
        if stray:
            raise JobError(f"{out} holds Parquet shards but no {MANIFEST_NAME}; use another --out, or --overwrite")
    if overwrite:
        for f in os.listdir(out):
            if (f.startswith("part-") and f.endswith(".parquet")) or f in (MANIFEST_NAME, VOCAB_NAME):
                os.unlink(os.path.join(out, f))
    for f in os.listdir(out):  # temporaries of an interrupted run
        if f.startswith((".part-", "." + MANIFEST_NAME, "." + VOCAB_NAME)) and f.endswith(".tmp"):
            os.unlink(os.path.join(out, f))
    # a recorded shard is kept only if its file is there, whole
    for k, entry in enumerate(shards):
        if entry is None:
            continue
        p = os.path.join(out, entry["name"])
        ok = os.path.isfile(p) and os.path.getsize(p) == entry["bytes"]
        if ok and verify:
            from splade_onnx.artifact.manifest import sha256_file

            ok = sha256_file(p) == entry["sha256"]
        if not ok:
            log.warning("shard %s is missing or damaged; encoding it again", entry["name"])
            shards[k] = None
    if not os.path.isfile(os.path.join(out, VOCAB_NAME)):
        write_json_atomic(os.path.join(out, VOCAB_NAME), expander.vocab)
    manifest: Dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "job": job,
        "model": model_info(expander),
        "vocab_size": expander.vocab_size,
        "vocab": VOCAB_NAME,
        "engine": engine,
        "complete": False,
        "documents_written": 0,
        "shards": shards,
    }

    def save_manifest() -> None:
        manifest["documents_written"] = sum(e["documents"] for e in shards if e is not None)
        manifest["complete"] = all(e is not None for e in shards)
        write_json_atomic(man_path, manifest)

    save_manifest()
    todo = [k for k in range(n_shards) if shards[k] is None]
    kept = n_shards - len(todo)
    texts_of: Dict[int, List[str]] = {}

    def work() -> Iterator[ShardWork]:
        want = set(todo)
        buf: List[str] = []
        k = 0
        for j, doc in enumerate(iter_documents(corpus)):
            d = doc.id if id_type == "int64" else str(doc.id)
            if j >= n_docs or d != ids[j]:
                raise JobError(f"{corpus} changed while the job ran (document {j + 1}); rerun the job")
            if k in want:
                buf.append(doc.text)
            if (j + 1) % shard_size == 0 or j + 1 == n_docs:
                if k in want:
                    if store_text:
                        texts_of[k] = buf
                    yield k, buf
                buf, k = [], k + 1

    from splade_onnx.encode.stream import progress_bar

    bar = progress_bar(n_docs, progress, desc=f"encoding ({engine})", unit="doc")
    if bar is not None:
        bar.update(sum(e["documents"] for e in shards if e is not None))

    def on_docs(n: int) -> None:
        if bar is not None:
            bar.update(n)

    o = _Opts(model, role, prune, max_length, batch_size, workers)
    if engine == "local":
        results = _encode_local(work(), o, on_docs)
    elif engine == "spark":
        results = _encode_spark(work(), o, on_docs, spark_master)
    else:
        results = _encode_ray(work(), o, on_docs, ray_address)
    done = 0
    try:
        for k, vecs in results:
            lo, hi = k * shard_size, min((k + 1) * shard_size, n_docs)
            shard_ids = ids[lo:hi]
            if len(vecs) != len(shard_ids):
                raise JobError(f"shard {k}: {len(vecs)} vectors for {len(shard_ids)} documents")
            table = shard_table(shard_ids, vecs, texts_of.pop(k, None) if store_text else None, id_type=id_type)
            name = shard_name(k)
            digest = write_shard(os.path.join(out, name), table)
            shards[k] = {
                "name": name,
                "documents": len(shard_ids),
                "first_id": shard_ids[0],
                "last_id": shard_ids[-1],
                "nnz": int(sum(len(v.indices) for v in vecs)),
                "bytes": os.path.getsize(os.path.join(out, name)),
                "sha256": digest,
            }
            save_manifest()
            done += 1
    finally:
        if bar is not None:
            bar.close()
    missing = [k for k, e in enumerate(shards) if e is None]
    if missing:
        raise JobError(f"{len(missing)} shard(s) were not written (e.g. {shard_name(missing[0])}); rerun to finish")
    if manifest["documents_written"] != n_docs:
        raise JobError(f"{manifest['documents_written']} documents written for {n_docs} in the corpus")
    return EncodeJobResult(out, n_docs, n_shards, done, kept, time.perf_counter() - t0, manifest)


__all__ = [
    "run_encode_job",
    "EncodeJobResult",
    "JobError",
    "scan_corpus",
    "shard_name",
    "MANIFEST_NAME",
    "VOCAB_NAME",
    "ENGINES",
    "vectors_to_arrow",
]
