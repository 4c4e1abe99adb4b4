"""Bulk loading SPLADE vectors into Qdrant with its own client, ``qdrant-client`` (``pip install
"splade-onnx[qdrant]"``), and searching them.

The collection has one named sparse vector (``vector_name``, default ``"splade"``), keyed by vocabulary id, so no
vocabulary is needed. Points are sent with ``client.upload_points`` (batches of ``batch_size``, retried, optionally in
``parallel`` processes) and searched with ``client.query_points(..., using=vector_name)``: exact dot products.

Qdrant point ids are unsigned integers or UUIDs: a non-negative ``int`` id is used as is, any other id becomes
``uuid5(ID_NAMESPACE, str(id))`` (stable across runs, so a reload overwrites). The original id is kept in the payload
under ``"doc_id"`` and :func:`search` returns it.

``idf=True`` creates the sparse vector with ``Modifier.IDF``: Qdrant then multiplies each query weight by
``ln(1 + (N - df + 0.5) / (df + 0.5))`` computed over the collection (``df``: the points whose vector has the token).
That applies to document-only (inference-free) retrieval where the query carries no learned weights: send unit
weights over the query's distinct tokens (:func:`unit_query`). It does not apply to queries encoded by a model, nor to
the IDF query role (``idf.json``), whose weights already hold an IDF: the engine would apply it twice.
"""

from __future__ import annotations

import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from splade_onnx.io.payloads import zip_records
from splade_onnx.vectors import SparseVector

DEFAULT_VECTOR = "splade"
ID_FIELD = "doc_id"
ID_NAMESPACE = uuid.UUID("6f0b7c1e-5d1a-4c43-9a57-2f1c8d0e9b31")

__all__ = [
    "create_collection",
    "point_id",
    "points",
    "bulk_load",
    "unit_query",
    "search",
    "DEFAULT_VECTOR",
    "ID_FIELD",
    "ID_NAMESPACE",
]


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("qdrant", "loading into Qdrant", e) from e
    return models


def create_collection(
    client: Any, name: str, *, vector_name: str = DEFAULT_VECTOR, idf: bool = False, on_disk: bool = False
) -> Any:
    """Create collection ``name`` with one sparse vector ``vector_name`` (no dense vectors); ``idf=True`` adds
    ``Modifier.IDF`` (see the module docs for when it applies)."""
    models = _models()
    params = models.SparseVectorParams(
        index=models.SparseIndexParams(on_disk=on_disk), modifier=models.Modifier.IDF if idf else None
    )
    return client.create_collection(name, vectors_config={}, sparse_vectors_config={vector_name: params})


def point_id(doc_id: Any) -> Union[int, str]:
    """The Qdrant point id of ``doc_id``: itself for a non-negative int, else a UUID5 string of ``str(doc_id)``."""
    if isinstance(doc_id, (int, np.integer)) and not isinstance(doc_id, bool) and int(doc_id) >= 0:
        return int(doc_id)
    return str(uuid.uuid5(ID_NAMESPACE, str(doc_id)))


def points(
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    *,
    vector_name: str = DEFAULT_VECTOR,
    texts: Optional[Iterable[Optional[str]]] = None,
    payloads: Optional[Iterable[Dict[str, Any]]] = None,
    text_field: str = "text",
    check_duplicates: bool = True,
) -> Iterator[Any]:
    """``PointStruct`` s, lazily: the sparse vector under ``vector_name``, payload ``{"doc_id": id[, "text"]}`` plus
    the matching item of ``payloads``."""
    models = _models()
    pit = iter(payloads) if payloads is not None else None
    for doc_id, vec, text in zip_records(ids, vectors, texts, check_duplicates=check_duplicates):
        pid = point_id(doc_id)
        keep = int(doc_id) if isinstance(doc_id, np.integer) else doc_id
        payload: Dict[str, Any] = {ID_FIELD: keep if isinstance(keep, (int, str)) else str(keep)}
        if text is not None:
            payload[text_field] = text
        if pit is not None:
            payload.update(next(pit))
        yield models.PointStruct(
            id=pid,
            payload=payload,
            vector={vector_name: models.SparseVector(indices=vec.indices.tolist(), values=vec.values.tolist())},
        )


def bulk_load(
    client: Any,
    name: str,
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    *,
    vector_name: str = DEFAULT_VECTOR,
    texts: Optional[Iterable[Optional[str]]] = None,
    payloads: Optional[Iterable[Dict[str, Any]]] = None,
    batch_size: int = 256,
    parallel: int = 1,
    max_retries: int = 3,
    check_duplicates: bool = True,
) -> int:
    """Upload every ``(id, vector[, text])`` with ``client.upload_points`` (waiting for each batch to be applied);
    returns the number of points sent. ``ValueError`` for mismatched lengths or a repeated id, before that point is
    sent; an upload that still fails after ``max_retries`` raises the client's error."""
    count = [0]

    def counted() -> Iterator[Any]:
        for p in points(
            ids, vectors, vector_name=vector_name, texts=texts, payloads=payloads, check_duplicates=check_duplicates
        ):
            count[0] += 1
            yield p

    client.upload_points(
        name, points=counted(), batch_size=batch_size, parallel=parallel, max_retries=max_retries, wait=True
    )
    return count[0]


def unit_query(vector: SparseVector) -> SparseVector:
    """Weight 1 on each token of ``vector``: the query for an ``idf=True`` collection (document-only retrieval)."""
    return SparseVector(vector.indices, np.ones(len(vector), dtype=np.float32))


def search(
    client: Any, name: str, vector: SparseVector, *, k: int = 10, vector_name: str = DEFAULT_VECTOR
) -> List[Tuple[Any, float]]:
    """``[(doc_id, score), ...]`` best first (``client.query_points`` on the sparse vector)."""
    models = _models()
    q = models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())
    res = client.query_points(name, query=q, using=vector_name, limit=int(k), with_payload=[ID_FIELD])
    return [((p.payload or {}).get(ID_FIELD, p.id), float(p.score)) for p in res.points]
