"""Parquet shards of sparse vectors: one row per document, columns ``id``, ``indices: list<int32>``,
``values: list<float32>`` and optionally ``text`` (needs pyarrow: the ``[parquet]`` extra).

A shard is written crash-safely: to a temporary name in the same folder, flushed and fsynced, then renamed over its
final name (and the folder fsynced), so a shard file either exists complete or not at all. The same files are what
``df.write.parquet(...)`` produces from :func:`splade_onnx.engines.spark.add_splade_columns` output (any extra
columns are ignored by the reader).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from splade_onnx.artifact.manifest import sha256_file
from splade_onnx.errors import IndexFileError

if TYPE_CHECKING:  # pragma: no cover
    from splade_onnx.vectors import SparseVector

DocId = Union[str, int]
ID_TYPES = ("int64", "string")
# the folder layout of `splade-onnx encode` output (written by jobs.encode, read by index.shards)
MANIFEST_NAME = "manifest.json"
VOCAB_NAME = "vocab.json"
VECTORS_FORMAT = "splade-onnx-vectors"


def import_pyarrow(what: str = "Parquet shards") -> Any:
    """``(pyarrow, pyarrow.parquet)`` or :class:`~splade_onnx.errors.MissingExtraError` (extra ``parquet``)."""
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("parquet", what, e) from e
    return pyarrow, pq


class Shard(NamedTuple):
    """The content of one shard: ids, CSR arrays (``indptr`` int64, ``indices`` int32, ``values`` float32) and
    the texts (``None`` when the shard has no ``text`` column)."""

    ids: List[DocId]
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    texts: Optional[List[str]]


def fsync_dir(path: str) -> None:
    """fsync a folder, so a rename inside it is durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)


def write_json_atomic(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_atomic(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def shard_table(
    ids: Sequence[DocId],
    vectors: Sequence["SparseVector"],
    texts: Optional[Sequence[str]] = None,
    *,
    id_type: str = "string",
) -> Any:
    """The Arrow table of a shard (``id`` as ``int64`` or ``string``)."""
    pa, _ = import_pyarrow()
    from splade_onnx.engines import vectors_to_arrow

    if id_type not in ID_TYPES:
        raise ValueError(f"id_type must be one of {ID_TYPES}, got {id_type!r}")
    if len(ids) != len(vectors) or (texts is not None and len(texts) != len(ids)):
        raise ValueError(f"{len(ids)} ids, {len(vectors)} vectors and {len(texts or [])} texts do not match")
    id_arr = (
        pa.array([int(d) for d in ids], type=pa.int64())
        if id_type == "int64"
        else pa.array([str(d) for d in ids], type=pa.string())
    )
    cols = vectors_to_arrow(vectors)
    arrays = [id_arr, cols["indices"], cols["values"]]
    names = ["id", "indices", "values"]
    if texts is not None:
        arrays.append(pa.array(list(texts), type=pa.string()))
        names.append("text")
    return pa.Table.from_arrays(arrays, names=names)


def write_shard(path: str, table: Any) -> str:
    """Write an Arrow table to ``path`` as Parquet, crash-safely (temporary name, fsync, rename); returns its
    sha256."""
    _, pq = import_pyarrow()
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(folder)
    return digest


def read_shard(path: str, *, texts: bool = True) -> Shard:
    """Read a Parquet file with ``id``, ``indices`` and ``values`` columns (``text`` too when present and
    ``texts``) into a :class:`Shard`."""
    pa, pq = import_pyarrow()
    try:
        names = pq.read_schema(path).names
        missing = [c for c in ("id", "indices", "values") if c not in names]
        if missing:
            raise IndexFileError(
                f"not a vectors shard: no column(s) {', '.join(missing)} (columns: {', '.join(names)})", path
            )
        cols = ["id", "indices", "values"] + (["text"] if texts and "text" in names else [])
        table = pq.read_table(path, columns=cols)
    except (OSError, pa.ArrowException) as e:
        raise IndexFileError(f"cannot read Parquet shard ({e})", path) from e
    ind = table.column("indices").combine_chunks()
    val = table.column("values").combine_chunks()
    off = np.asarray(ind.offsets, dtype=np.int64)
    off_v = np.asarray(val.offsets, dtype=np.int64)
    if not np.array_equal(off - off[0], off_v - off_v[0]):
        raise IndexFileError("indices and values rows differ in length", path)
    flat_i = np.asarray(ind.values.to_numpy(zero_copy_only=False))[off[0] : off[-1]].astype(np.int32, copy=False)
    flat_v = np.asarray(val.values.to_numpy(zero_copy_only=False))[off_v[0] : off_v[-1]].astype(np.float32, copy=False)
    ids = table.column("id").to_pylist()
    if any(d is None for d in ids):
        raise IndexFileError("null document id", path)
    txt = table.column("text").to_pylist() if "text" in table.column_names else None
    return Shard(ids, off - off[0], flat_i, flat_v, txt)


def list_parquet(folder: str) -> List[str]:
    """The ``*.parquet`` files of a folder (recursively, e.g. Spark's ``part-*`` output), sorted, hidden files and
    temporaries skipped."""
    out: List[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for f in sorted(files):
            if f.endswith(".parquet") and not f.startswith((".", "_")):
                out.append(os.path.join(root, f))
    return sorted(out)


def read_json(path: str) -> Dict[str, Any]:
    """A JSON object from ``path`` (:class:`IndexFileError` when it is not one)."""
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise IndexFileError(f"cannot read ({e})", path) from e
    if not isinstance(obj, dict):
        raise IndexFileError("expected a JSON object", path)
    return obj


__all__ = [
    "MANIFEST_NAME",
    "VOCAB_NAME",
    "VECTORS_FORMAT",
    "Shard",
    "shard_table",
    "write_shard",
    "read_shard",
    "list_parquet",
    "write_atomic",
    "write_json_atomic",
    "read_json",
    "sha256_file",
    "fsync_dir",
    "import_pyarrow",
]
