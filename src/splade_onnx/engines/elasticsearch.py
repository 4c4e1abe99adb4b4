"""Bulk loading SPLADE vectors into Elasticsearch with its own client, ``elasticsearch`` (``pip install
"splade-onnx[elasticsearch]"``), and searching them with a ``sparse_vector`` query.

The field is mapped ``sparse_vector``; each document holds ``{field: {token: weight}}``; the query is
``{"sparse_vector": {"field": ..., "query_vector": {token: weight}}}`` (Elasticsearch 8.15+). Elasticsearch 8.16+
accepts feature names containing a dot; for older servers pass ``dots="replace"`` (U+2024 in place of the dot, on
documents and queries alike: nothing lost) -- the default ``dots="keep"`` sends the tokens as the tokenizer spells
them. Lucene keeps 9 significant bits of a feature weight, so the engine's scores are the dot product to about 0.4%.

::

    from elasticsearch import Elasticsearch
    from splade_onnx.engines import elasticsearch as esx

    client = Elasticsearch("http://localhost:9200")
    esx.create_index(client, "scifact")
    esx.bulk_load(client, "scifact", ids, expander.expand_iter(texts), expander, texts=texts, refresh=True)
    hits = esx.search(client, "scifact", expander.encode_queries("query text"), expander, k=10)

Loading streams (``elasticsearch.helpers.streaming_bulk``, ``chunk_size`` documents per ``_bulk`` request); a refused
document does not stop the load, and :class:`~splade_onnx.io.payloads.BulkLoadError` lists every refused id at the
end. ``op_type="index"`` (default) makes a rerun after an interruption safe: the same ids are overwritten.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from splade_onnx.engines import bulk
from splade_onnx.io.payloads import Vocab, elasticsearch_document, elasticsearch_query, zip_records
from splade_onnx.vectors import SparseVector

DEFAULT_FIELD = "splade"
DEFAULT_TEXT_FIELD = "text"

__all__ = [
    "mappings",
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
        from elasticsearch import helpers
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("elasticsearch", "bulk loading into Elasticsearch", e) from e
    return helpers


def mappings(*, field: str = DEFAULT_FIELD, text_field: Optional[str] = DEFAULT_TEXT_FIELD) -> Dict[str, Any]:
    """The index ``mappings``: ``field`` as ``sparse_vector``, ``text_field`` (if any) as ``text``."""
    props: Dict[str, Any] = {field: {"type": "sparse_vector"}}
    if text_field:
        props[text_field] = {"type": "text"}
    return {"properties": props}


def create_index(
    client: Any,
    index: str,
    *,
    field: str = DEFAULT_FIELD,
    text_field: Optional[str] = DEFAULT_TEXT_FIELD,
    settings: Optional[Dict[str, Any]] = None,
) -> Any:
    """Create ``index`` with :func:`mappings` (``client.indices.create``); returns the engine's answer."""
    kwargs: Dict[str, Any] = {"mappings": mappings(field=field, text_field=text_field)}
    if settings:
        kwargs["settings"] = dict(settings)
    return client.indices.create(index=index, **kwargs)


def actions(
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    vocab: Vocab,
    *,
    index: str,
    texts: Optional[Iterable[Optional[str]]] = None,
    field: str = DEFAULT_FIELD,
    text_field: str = DEFAULT_TEXT_FIELD,
    dots: str = "keep",
    op_type: str = "index",
    check_duplicates: bool = True,
) -> Iterator[Dict[str, Any]]:
    """Bulk actions for ``elasticsearch.helpers``, one per document, lazily."""
    for doc_id, vec, text in zip_records(ids, vectors, texts, check_duplicates=check_duplicates):
        yield {
            "_op_type": op_type,
            "_index": index,
            "_id": str(doc_id),
            "_source": elasticsearch_document(vec, vocab, field=field, dots=dots, text=text, text_field=text_field),
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
    dots: str = "keep",
    chunk_size: int = 500,
    max_chunk_bytes: int = 50 * 1024 * 1024,
    op_type: str = "index",
    max_retries: int = 3,
    refresh: bool = False,
    check_duplicates: bool = True,
) -> int:
    """Send every ``(id, vector[, text])`` with ``elasticsearch.helpers.streaming_bulk``; returns how many documents
    the engine acknowledged. Raises :class:`~splade_onnx.io.payloads.BulkLoadError` listing the refused ids (after
    sending all the others), ``ValueError`` for mismatched lengths or a repeated id (before sending it).
    ``max_retries`` retries documents answered 429. ``refresh=True`` makes them searchable before returning."""
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
        engine="Elasticsearch",
        index=index,
        chunk_size=chunk_size,
        max_chunk_bytes=max_chunk_bytes,
        max_retries=max_retries,
        refresh=refresh,
    )


def search_body(
    vector: SparseVector, vocab: Vocab, *, field: str = DEFAULT_FIELD, k: int = 10, dots: str = "keep"
) -> Dict[str, Any]:
    """``POST /<index>/_search`` body: a ``sparse_vector`` query with the precomputed query weights, ``size`` k, no
    ``_source``. Pass the ``dots`` the documents were loaded with."""
    body = elasticsearch_query(vector, vocab, field=field, dots=dots, size=k)
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
    dots: str = "keep",
) -> List[Tuple[str, float]]:
    """``[(id, score), ...]`` best first, from ``client.search`` with :func:`search_body`."""
    body = search_body(vector, vocab, field=field, k=k, dots=dots)
    res = client.search(index=index, query=body["query"], size=body["size"], source=False)
    return [(h["_id"], float(h["_score"])) for h in res["hits"]["hits"]]
