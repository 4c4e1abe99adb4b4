"""Streaming encoding: vectors out in order while only one chunk of texts is held in memory."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Iterable, Iterator, List, Optional

from splade_onnx.errors import TextTypeError, TextValueError
from splade_onnx.vectors import SparseVector

log = logging.getLogger("splade_onnx")


def progress_bar(total: Optional[int], enabled: bool, desc: str = "encoding", unit: str = "text") -> Any:
    """A tqdm bar when tqdm is installed and ``enabled``, else None (tqdm is optional: ``pip install tqdm``)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        log.info("progress bar requested but tqdm is not installed (pip install tqdm); continuing without one")
        return None
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=False)


def expand_iter(
    expand: Callable[..., List[SparseVector]],
    texts: Iterable[str],
    *,
    chunk_size: int = 256,
    progress: bool = False,
    total: Optional[int] = None,
    **expand_kwargs: Any,
) -> Iterator[SparseVector]:
    """Yield one vector per text, in order, pulling ``chunk_size`` texts at a time from ``texts`` and encoding each
    chunk with ``expand(chunk, **expand_kwargs)`` (an Expander's ``expand``, ``encode_documents`` or ...).

    Bad items raise the same :class:`~splade_onnx.errors.TextTypeError`/``TextValueError`` as ``expand``, with
    positions counted from the start of the stream (the vectors of the failing chunk's other texts are on
    ``.results``; everything before the chunk was already yielded).
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("expand_iter takes an iterable of texts; for one text use expand(text)")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if total is None and hasattr(texts, "__len__"):
        total = len(texts)  # type: ignore[arg-type]
    bar = progress_bar(total, progress)
    it = iter(texts)
    offset = 0
    try:
        while True:
            chunk = list(itertools.islice(it, chunk_size))
            if not chunk:
                return
            try:
                vecs = expand(chunk, **expand_kwargs)
            except (TextTypeError, TextValueError) as e:
                moved = [p + offset for p in e.positions]
                if moved:
                    e.positions = moved
                    e.args = (
                        f"{e.args[0]} (positions are within the chunk starting at stream position {offset}; "
                        f"stream positions: {moved})",
                    )
                raise
            offset += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
            yield from vecs
            del vecs, chunk
    finally:
        if bar is not None:
            bar.close()
