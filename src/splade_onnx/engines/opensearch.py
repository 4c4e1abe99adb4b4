"""Bulk loading SPLADE vectors into OpenSearch with its own client, ``opensearch-py`` (``pip install
"splade-onnx[opensearch]"``), and searching them with a raw-vector ``neural_sparse`` query.

The field is mapped ``rank_features`` (OpenSearch's neural sparse field: exact search on an inverted index, 2.11+);
each document's ``_source`` holds ``{field: {token: weight}}``. ``rank_features`` refuses feature names containing a
dot, so by default ('.' in ``dots="replace"``) such tokens are written with U+2024 in place of the dot, on documents
and queries alike: every token is kept and the scores are those of the vectors. Lucene stores a feature weight with
9 significant bits, so the engine's scores are the dot product to about 0.4% (its ranking can differ from
:class:`~splade_onnx.SparseIndex` where scores are that close).

::

    from opensearchpy import OpenSearch
    from splade_onnx.engines import opensearch as osx

    client = OpenSearch("http://localhost:9200")
    osx.create_index(client, "scifact")
    osx.bulk_load(client, "scifact", ids, expander.expand_iter(texts), expander, texts=texts, refresh=True)
    hits = osx.search(client, "scifact", expander.encode_queries("query text"), expander, k=10)

Loading streams: ``ids``, ``vectors`` and ``texts`` may be generators, sent ``chunk_size`` documents per ``_bulk``
request (``opensearchpy.helpers.streaming_bulk``). A document the engine refuses does not stop the load; at the end
:class:`~splade_onnx.io.payloads.BulkLoadError` lists every refused id with the engine's reason. With the default
``op_type="index"`` a rerun after an interruption overwrites what was already loaded (same ids), so it is safe.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from splade_onnx.engines import bulk
from splade_onnx.io.payloads import Vocab, opensearch_document, opensearch_query, zip_records
from splade_onnx.vectors import SparseVector

DEFAULT_FIELD = "passage_embedding"
DEFAULT_TEXT_FIELD = "passage_text"

__all__ = [
    "index_body",
    "create_index",
    "actions",
    "bulk_load",
    "search_body",
    "search",
    "DEFAULT_FIELD",
    "DEFAULT_TEXT_FIELD",
]


def _helpers() -> Any:
    try:
        from opensearchpy import helpers
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("opensearch", "bulk loading into OpenSearch", e) from e
    return helpers


def index_body(
    *,
    field: str = DEFAULT_FIELD,
    text_field: Optional[str] = DEFAULT_TEXT_FIELD,
    settings: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The ``PUT /<index>`` body: ``field`` mapped ``rank_features``, ``text_field`` (if any) ``text``."""
    props: Dict[str, Any] = {field: {"type": "rank_features"}}
    if text_field:
        props[text_field] = {"type": "text"}
    body: Dict[str, Any] = {"mappings": {"properties": props}}
    if settings:
        body["settings"] = dict(settings)
    return body


def create_index(
    client: Any,
    index: str,
    *,
    field: str = DEFAULT_FIELD,
    text_field: Optional[str] = DEFAULT_TEXT_FIELD,
    settings: Optional[Dict[str, Any]] = None,
) -> Any:
    """Create ``index`` with :func:`index_body` (``client.indices.create``); returns the engine's answer."""
    return client.indices.create(index=index, body=index_body(field=field, text_field=text_field, settings=settings))


def actions(
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    vocab: Vocab,
    *,
    index: str,
    texts: Optional[Iterable[Optional[str]]] = None,
    field: str = DEFAULT_FIELD,
    text_field: str = DEFAULT_TEXT_FIELD,
    dots: str = "replace",
    op_type: str = "index",
    check_duplicates: bool = True,
) -> Iterator[Dict[str, Any]]:
    """Bulk actions for ``opensearchpy.helpers``, one per document, lazily."""
    for doc_id, vec, text in zip_records(ids, vectors, texts, check_duplicates=check_duplicates):
        yield {
            "_op_type": op_type,
            "_index": index,
            "_id": str(doc_id),
            "_source": opensearch_document(vec, vocab, field=field, text=text, text_field=text_field, dots=dots),
        }


def bulk_load(
    client: Any,
    index: str,
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    vocab: Vocab,
    *,
    texts: Optional[Iterable[Optional[str]]] = None,
    field: str = DEFAULT_FIELD,
    text_field: str = DEFAULT_TEXT_FIELD,
    dots: str = "replace",
    chunk_size: int = 500,
    max_chunk_bytes: int = 50 * 1024 * 1024,
    op_type: str = "index",
    max_retries: int = 3,
    refresh: bool = False,
    check_duplicates: bool = True,
) -> int:
    """Send every ``(id, vector[, text])`` with ``opensearchpy.helpers.streaming_bulk``; returns how many documents
    the engine acknowledged. Raises :class:`~splade_onnx.io.payloads.BulkLoadError` listing the refused ids (after
    sending all the others), ``ValueError`` for mismatched lengths or a repeated id (before sending it).
    ``max_retries`` retries a chunk the engine answers 429 (too many requests). ``refresh=True`` makes the documents
    searchable before returning."""
    helpers = _helpers()
    acts = actions(
        ids,
        vectors,
        vocab,
        index=index,
        texts=texts,
        field=field,
        text_field=text_field,
        dots=dots,
        op_type=op_type,
        check_duplicates=check_duplicates,
    )
    return bulk.send(
        helpers,
        client,
        acts,
        engine="OpenSearch",
        index=index,
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        max_retries=max_retries,
        refresh=refresh,
    )


def search_body(
    vector: SparseVector, vocab: Vocab, *, field: str = DEFAULT_FIELD, k: int = 10, dots: str = "replace"
) -> Dict[str, Any]:
    """``POST /<index>/_search`` body: a raw-vector ``neural_sparse`` query (``query_tokens``), ``size`` k, no
    ``_source`` (ids and scores only). Pass the ``dots`` the documents were loaded with."""
    body = opensearch_query(vector, vocab, field=field, size=k, dots=dots)
    body["_source"] = False
    return body


def search(
    client: Any,
    index: str,
    vector: SparseVector,
    vocab: Vocab,
    *,
    k: int = 10,
    field: str = DEFAULT_FIELD,
    dots: str = "replace",
) -> List[Tuple[str, float]]:
    """``[(id, score), ...]`` best first, from ``client.search`` with :func:`search_body`."""
    res = client.search(index=index, body=search_body(vector, vocab, field=field, k=k, dots=dots))
    return [(h["_id"], float(h["_score"])) for h in res["hits"]["hits"]]
