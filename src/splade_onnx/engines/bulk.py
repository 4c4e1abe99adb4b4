"""The bulk-send step OpenSearch and Elasticsearch share: their ``helpers.streaming_bulk`` (the two clients have the
same helper) over lazily built actions, with every refused document collected instead of stopping at the first."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple

from splade_onnx.errors import BulkLoadError


def failed_items(results: Iterable[Tuple[bool, Dict[str, Any]]]) -> Tuple[int, Dict[str, str]]:
    """Count the acknowledged items of a ``streaming_bulk`` result stream and collect ``{id: reason}`` of the rest."""
    ok_count = 0
    failed: Dict[str, str] = {}
    for ok, item in results:
        if ok:
            ok_count += 1
            continue
        info = next(iter(item.values())) if len(item) == 1 else item
        err = info.get("error", info.get("exception", "refused"))
        if isinstance(err, dict):
            reason = f"{err.get('type', 'error')}: {err.get('reason', err)}"
        else:
            reason = str(err)
        failed[str(info.get("_id"))] = f"status {info.get('status')}, {reason}"
    return ok_count, failed


def send(
    helpers: Any,
    client: Any,
    actions: Iterable[Dict[str, Any]],
    *,
    engine: str,
    index: str,
    chunk_size: int,
    max_chunk_bytes: int,
    max_retries: int,
    refresh: bool,
) -> int:
    """Send ``actions`` through ``helpers.streaming_bulk``; returns how many documents ``engine`` acknowledged.
    Raises :class:`~splade_onnx.errors.BulkLoadError` listing the refused ids, after sending all the others."""
    results = helpers.streaming_bulk(
        client,
        actions,
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        raise_on_error=False,
        raise_on_exception=True,
        max_retries=max_retries,
    )
    loaded, failed = failed_items(results)
    if refresh:
        client.indices.refresh(index=index)
    if failed:
        raise BulkLoadError(engine, failed, loaded)
    return loaded
