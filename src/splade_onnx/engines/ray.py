"""SPLADE columns on a Ray Dataset (``pip install "splade-onnx[ray]"``).

Ray Data's batch-inference pattern: :meth:`Dataset.map_batches` with a callable class, :class:`SpladeEncoder`, held by
an actor pool: each actor loads the artifact once in its constructor and encodes whole Arrow batches (sorted by
token length inside :meth:`Expander.expand`). An actor that dies is restarted by Ray and its batch re-run;
encoding is deterministic, so the re-run yields the same rows.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

from splade_onnx.engines import add_columns_to_batch, check_role, get_expander

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from ray.data import Dataset


def import_ray(what: str = "splade_onnx.engines.ray") -> Any:
    """``import ray.data`` or raise :class:`~splade_onnx.errors.MissingExtraError` (extra ``ray``)."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("ray", what, e) from e
    return ray


class SpladeEncoder:
    """The callable class of :func:`add_splade_columns`: one Expander per actor, whole Arrow batches per call."""

    def __init__(
        self,
        model: str,
        *,
        text_col: str = "text",
        role: str = "document",
        prune: Any = None,
        tokens: bool = False,
        batch_size: int = 32,
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
        verify: bool = True,
    ) -> None:
        self.expander = get_expander(model, threads=threads, verify=verify)
        self.opts: Dict[str, Any] = dict(
            text_col=text_col,
            role=check_role(role),
            prune=prune,
            tokens=tokens,
            batch_size=batch_size,
            max_length=max_length,
        )

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        if batch.num_rows == 0:
            import pyarrow as pa

            fields = [pa.field("indices", pa.list_(pa.int32())), pa.field("values", pa.list_(pa.float32()))]
            if self.opts["tokens"]:
                fields.append(pa.field("tokens", pa.list_(pa.string())))
            for f in fields:
                batch = batch.append_column(f, pa.array([], type=f.type))
            return batch
        return add_columns_to_batch(batch, self.expander, **self.opts)


def add_splade_columns(
    ds: "Dataset",
    model: "str | os.PathLike[str]",
    *,
    text_col: str = "text",
    role: str = "document",
    prune: Any = None,
    tokens: bool = False,
    batch_size: int = 32,
    max_length: Optional[int] = None,
    concurrency: Union[int, Tuple[int, int], None] = None,
    num_cpus: float = 1,
    threads: Optional[int] = None,
    map_batch_size: int = 1024,
    verify: bool = True,
    **map_batches_kwargs: Any,
) -> "Dataset":
    """``ds`` with ``indices: list<int32>`` and ``values: list<float32>`` (and ``tokens: list<string>`` with
    ``tokens=True``) columns: the SPLADE vector of each row's ``text_col``. Lazy, like every Ray Data transform.

    Args:
        model: artifact folder (readable by every node) or hub repo id.
        role, prune, tokens, batch_size, max_length: as in :func:`splade_onnx.engines.spark.add_splade_columns`.
        concurrency: actors in the pool (an int, or ``(min, max)`` for an autoscaling pool; default: the cluster's
            CPUs divided by ``num_cpus``).
        num_cpus: CPUs reserved per actor.
        threads: onnxruntime threads per actor (default ``num_cpus``, at least 1).
        map_batch_size: rows per call of the actor (the unit that is sorted by length and retried on failure).
        map_batches_kwargs: passed to :meth:`Dataset.map_batches` (e.g. ``runtime_env``, ``memory``).

    The vectors are those of a single-process ``Expander.expand`` of the same texts (same indices, same values).
    """
    ray = import_ray()
    check_role(role)
    model = os.fspath(model)
    if os.path.isdir(model):
        model = os.path.abspath(model)
    if threads is None:
        threads = max(1, int(num_cpus))
    if concurrency is None:
        cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else (os.cpu_count() or 1)
        concurrency = max(1, int(cpus // max(num_cpus, 1e-9)))
    # Ray Data restarts a dead actor and retries its batches by default (max_restarts=-1, max_task_retries=-1)
    if isinstance(concurrency, tuple):
        pool = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        pool = ray.data.ActorPoolStrategy(size=int(concurrency))
    kwargs: Dict[str, Any] = dict(compute=pool)
    kwargs.update(map_batches_kwargs)
    return ds.map_batches(
        SpladeEncoder,
        fn_constructor_args=(model,),
        fn_constructor_kwargs=dict(
            text_col=text_col,
            role=role,
            prune=prune,
            tokens=tokens,
            batch_size=batch_size,
            max_length=max_length,
            threads=threads,
            verify=verify,
        ),
        batch_format="pyarrow",
        batch_size=map_batch_size,
        num_cpus=num_cpus,
        zero_copy_batch=True,
        **kwargs,
    )


__all__ = ["add_splade_columns", "SpladeEncoder"]
