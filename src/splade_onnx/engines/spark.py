"""SPLADE columns on a Spark DataFrame (``pip install "splade-onnx[spark]"``).

:func:`add_splade_columns` runs :meth:`DataFrame.mapInArrow`: each Python worker process loads the artifact once (a
per-process cache), and each Arrow batch of a partition (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows,
10,000 by default) is encoded in one :meth:`Expander.expand` call, which sorts it by token length. A failed task is
simply re-run by Spark: encoding is deterministic, so a retry yields the same rows.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterator, Optional

from splade_onnx.engines import add_columns_to_batch, check_role, get_expander, output_fields

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame


def import_pyspark(what: str = "splade_onnx.engines.spark") -> Any:
    """``import pyspark`` or raise :class:`~splade_onnx.errors.MissingExtraError` (extra ``spark``)."""
    try:
        import pyarrow  # noqa: F401  (mapInArrow needs it on the driver and the workers)
        import pyspark
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("spark", what, e) from e
    return pyspark


def add_splade_columns(
    df: "DataFrame",
    model: "str | os.PathLike[str]",
    *,
    text_col: str = "text",
    role: str = "document",
    prune: Any = None,
    tokens: bool = False,
    batch_size: int = 32,
    max_length: Optional[int] = None,
    threads: Optional[int] = None,
    verify: bool = True,
) -> "DataFrame":
    """``df`` with ``indices: array<int>`` and ``values: array<float>`` (and ``tokens: array<string>`` with
    ``tokens=True``) columns: the SPLADE vector of each row's ``text_col``.

    Args:
        model: artifact folder (readable by every executor: a shared path, or present on each node) or hub repo id.
        role: ``"document"`` (``encode_documents``) or ``"query"`` (``encode_queries``, the query role if any).
        prune: a pruning spec, e.g. ``"top_k=64"`` (see :mod:`splade_onnx.encode.pruning`).
        batch_size: texts per onnxruntime run (the Arrow batch is sorted by length first).
        max_length: tokens per text (default: the manifest's length for the role).
        threads: onnxruntime threads per Python worker (default ``spark.task.cpus``, 1 unless set), so
            ``local[N]`` / N executor cores run N single-threaded sessions without oversubscribing the cores.
        verify: check the model's sha256 against the manifest when a worker loads it.

    The vectors are those of a single-process ``Expander.expand`` of the same texts (same indices, same values).
    A null or empty text fails the task with the Expander's error naming its position in the batch.
    """
    import_pyspark()
    check_role(role)
    if text_col not in df.columns:
        raise KeyError(f"no column {text_col!r} in the DataFrame (columns: {', '.join(df.columns)})")
    added = output_fields(tokens)
    clash = [n for n, _ in added if n in df.columns]
    if clash:
        raise ValueError(f"the DataFrame already has column(s) {clash}; rename them first")
    if threads is None:
        spark = df.sparkSession
        threads = int(spark.conf.get("spark.task.cpus", "1") or 1)
    model = os.fspath(model)
    if os.path.isdir(model):
        model = os.path.abspath(model)
    schema = ", ".join(
        [f"`{f.name}` {f.dataType.simpleString()}" for f in df.schema.fields] + [f"`{n}` {t}" for n, t in added]
    )
    opts = dict(text_col=text_col, role=role, prune=prune, tokens=tokens, batch_size=batch_size, max_length=max_length)

    def encode_partition(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        expander = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if expander is None:
                expander = get_expander(model, threads=threads, verify=verify)
            yield add_columns_to_batch(batch, expander, **opts)

    return df.mapInArrow(encode_partition, schema)


__all__ = ["add_splade_columns"]
