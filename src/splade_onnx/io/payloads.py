"""Where the vectors go: request bodies and client objects for search engines, from :class:`SparseVector`.

Token-keyed formats (OpenSearch, Elasticsearch, Anserini) need the vocabulary: pass an :class:`Expander` or a list of
token strings by id (``Expander.vocab``). Tokens are kept as the tokenizer spells them (``##ing`` stays ``##ing``).
Id-keyed formats (Qdrant, Pinecone) use the vector's indices directly. Client libraries are optional: when
``qdrant-client`` / ``pinecone`` is importable the functions return its model types, otherwise plain dicts of the same
wire format (``pip install 'splade-onnx[payloads]'``).

==================  =============================================================================================
OpenSearch          document ``{field: {token: weight}}`` for a ``rank_features`` field (the neural sparse field
                    type); :func:`opensearch_bulk` NDJSON; query ``{"neural_sparse": {field: {"query_tokens":
                    {...}}}}`` (raw-vector neural sparse query, OpenSearch 2.14+)
Elasticsearch       document ``{field: {token: weight}}`` for a ``sparse_vector`` field; query ``{"sparse_vector":
                    {"field": f, "query_vector": {...}}}`` (8.15+). Feature names with a dot are refused by
                    ``rank_features`` and by ``sparse_vector`` before 8.16: ``dots="drop"`` removes such tokens
Qdrant              ``models.SparseVector(indices, values)``; :func:`qdrant_points` builds ``PointStruct``\\ s
Pinecone            ``sparse_values`` = ``{"indices": [...], "values": [...]}`` (``pinecone.SparseValues``)
Lucene / Anserini   ``JsonVectorCollection`` lines ``{"id", "contents", "vector": {token: int}}``, weights
                    quantised as ``round(w * scale)`` (default 100), zero after rounding dropped
==================  =============================================================================================
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from splade_onnx.errors import BulkLoadError as BulkLoadError  # re-exported: raised by the bulk loaders
from splade_onnx.vectors import SparseVector

Vocab = Union[Sequence[str], Any]  # a list of tokens by id, or an Expander (anything with .vocab)


def _vocab(vocab: Vocab) -> Sequence[str]:
    v = getattr(vocab, "vocab", vocab)
    if not isinstance(v, (list, tuple)) or not v:
        raise TypeError("vocab must be an Expander or a list of token strings by id")
    return v


#: What ``dots="replace"`` puts in place of '.' in a token (U+2024 ONE DOT LEADER): engines that refuse
#: dots in feature names (OpenSearch ``rank_features``, Elasticsearch before 8.16) then get every token,
#: and a query encoded the same way scores exactly as before; :func:`from_token_weights` turns it back.
DOT_REPLACEMENT = "\u2024"
DOTS = ("keep", "drop", "error", "replace")
_NAMES_CACHE: Dict[int, Any] = {}  # id(vocab) -> (vocab, names); holding the vocab keeps its id its own
_IDS_CACHE: Dict[int, Any] = {}  # id(names) -> (names, {name: token id})


def feature_names(vocab: Vocab, dots: str = "keep") -> Sequence[str]:
    """Feature names by token id as an engine will store them: the vocabulary, or with '.' replaced by
    :data:`DOT_REPLACEMENT` for ``dots="replace"`` (``ValueError`` if that would make two names equal)."""
    v = _vocab(vocab)
    if dots not in DOTS:
        raise ValueError(f"dots must be one of {DOTS}, got {dots!r}")
    if dots != "replace":
        return v
    hit = _NAMES_CACHE.get(id(v))
    if hit is not None and hit[0] is v:
        return hit[1]
    names = [t.replace(".", DOT_REPLACEMENT) for t in v]
    if len(set(names)) != len(set(v)):
        clash = sorted({n for n, t in zip(names, v, strict=True) if "." in t} & set(v))
        raise ValueError(f"dots='replace' would merge tokens: {clash[:5]} already exist in the vocabulary")
    if len(_NAMES_CACHE) > 8:
        _NAMES_CACHE.clear()
    _NAMES_CACHE[id(v)] = (v, names)
    return names


def token_weights(vector: SparseVector, vocab: Vocab, *, dots: str = "keep") -> Dict[str, float]:
    """``{token: weight}`` (heaviest first). ``dots``: ``"keep"``, ``"drop"`` tokens containing '.',
    ``"error"``, or ``"replace"`` the '.' by :data:`DOT_REPLACEMENT` (nothing lost; use it on documents
    and queries alike)."""
    names = feature_names(vocab, dots)
    order = np.lexsort((vector.indices, -vector.values))
    out: Dict[str, float] = {}
    for i in order:
        tok = names[int(vector.indices[i])]
        if dots in ("drop", "error") and "." in tok:
            if dots == "drop":
                continue
            raise ValueError(
                f"token {tok!r} contains a dot, which rank_features fields refuse; pass dots='drop' or dots='replace'"
            )
        out[tok] = float(vector.values[i])
    return out


def from_token_weights(weights: Dict[str, float], vocab: Vocab, *, dots: str = "keep") -> SparseVector:
    """Inverse of :func:`token_weights` (pass the same ``dots``): ``{token: weight}`` back to a vector."""
    names = feature_names(vocab, "replace" if dots == "replace" else "keep")
    hit = _IDS_CACHE.get(id(names))
    if hit is None or hit[0] is not names:
        if len(_IDS_CACHE) > 8:
            _IDS_CACHE.clear()
        hit = _IDS_CACHE[id(names)] = (names, {t: i for i, t in enumerate(names)})
    ids = hit[1]
    pairs = sorted((ids[t], w) for t, w in weights.items())
    return SparseVector(np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], np.float32))


def zip_records(
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    texts: Optional[Iterable[Optional[str]]] = None,
    *,
    check_duplicates: bool = True,
) -> Iterator[Tuple[Any, SparseVector, Optional[str]]]:
    """``(id, vector, text)`` triples from parallel iterables, lazily (streams of any length). Raises ``ValueError``
    when the lengths differ or, with ``check_duplicates``, when an id repeats (an engine would keep only the last
    document of that id); both are found before the record is handed on, so nothing after it is sent."""
    seen: set = set()
    it_ids, it_vecs = iter(ids), iter(vectors)
    it_texts = iter(texts) if texts is not None else None
    n = 0
    for doc_id in it_ids:
        try:
            vec = next(it_vecs)
        except StopIteration:
            raise ValueError(f"{n} vectors for more ids: ids and vectors must have the same length") from None
        text = None
        if it_texts is not None:
            try:
                text = next(it_texts)
            except StopIteration:
                raise ValueError(f"{n} texts for more ids: ids and texts must have the same length") from None
        if check_duplicates:
            if doc_id in seen:
                raise ValueError(f"duplicate id {doc_id!r} at position {n}: every document needs its own id")
            seen.add(doc_id)
        if not isinstance(vec, SparseVector):
            raise TypeError(f"vectors[{n}] is {type(vec).__name__}, not a SparseVector")
        yield doc_id, vec, text
        n += 1
    if next(it_vecs, None) is not None:
        raise ValueError(f"more vectors than the {n} ids: ids and vectors must have the same length")
    if it_texts is not None and next(it_texts, None) is not None:
        raise ValueError(f"more texts than the {n} ids: ids and texts must have the same length")


# ------------------------------------------------------------------------------------------------------ OpenSearch
def opensearch_document(
    vector: SparseVector,
    vocab: Vocab,
    *,
    field: str = "passage_embedding",
    text: Optional[str] = None,
    text_field: str = "passage_text",
    dots: str = "keep",
    **extra: Any,
) -> Dict[str, Any]:
    """A ``_source`` for an index whose ``field`` is mapped ``{"type": "rank_features"}`` (neural sparse).
    ``rank_features`` refuses feature names with a dot: ``dots="replace"`` (see :func:`token_weights`)."""
    doc: Dict[str, Any] = dict(extra)
    if text is not None:
        doc[text_field] = text
    doc[field] = token_weights(vector, vocab, dots=dots)
    return doc


def opensearch_bulk(
    vectors: Sequence[SparseVector],
    vocab: Vocab,
    *,
    index: str,
    ids: Optional[Sequence[str]] = None,
    texts: Optional[Sequence[str]] = None,
    field: str = "passage_embedding",
    text_field: str = "passage_text",
) -> str:
    """NDJSON body for ``POST _bulk`` (``{"index": {...}}`` + ``_source`` per vector, trailing newline)."""
    lines: List[str] = []
    for n, v in enumerate(vectors):
        action: Dict[str, Any] = {"_index": index}
        if ids is not None:
            action["_id"] = str(ids[n])
        lines.append(json.dumps({"index": action}, ensure_ascii=False))
        src = opensearch_document(
            v, vocab, field=field, text=None if texts is None else texts[n], text_field=text_field
        )
        lines.append(json.dumps(src, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def opensearch_query(
    vector: SparseVector,
    vocab: Vocab,
    *,
    field: str = "passage_embedding",
    size: Optional[int] = None,
    dots: str = "keep",
) -> Dict[str, Any]:
    """Search body with a raw-vector ``neural_sparse`` query (``query_tokens``); ``dots`` as for the documents."""
    body: Dict[str, Any] = {
        "query": {"neural_sparse": {field: {"query_tokens": token_weights(vector, vocab, dots=dots)}}}
    }
    if size is not None:
        body["size"] = int(size)
    return body


# ------------------------------------------------------------------------------------------------------ Elasticsearch
def elasticsearch_document(
    vector: SparseVector,
    vocab: Vocab,
    *,
    field: str = "ml.tokens",
    dots: str = "keep",
    text: Optional[str] = None,
    text_field: str = "text",
    **extra: Any,
) -> Dict[str, Any]:
    """A document for an index whose ``field`` is mapped ``{"type": "sparse_vector"}``."""
    doc: Dict[str, Any] = dict(extra)
    if text is not None:
        doc[text_field] = text
    doc[field] = token_weights(vector, vocab, dots=dots)
    return doc


def elasticsearch_query(
    vector: SparseVector, vocab: Vocab, *, field: str = "ml.tokens", dots: str = "keep", size: Optional[int] = None
) -> Dict[str, Any]:
    """Search body with a ``sparse_vector`` query on precomputed query weights."""
    body: Dict[str, Any] = {
        "query": {"sparse_vector": {"field": field, "query_vector": token_weights(vector, vocab, dots=dots)}}
    }
    if size is not None:
        body["size"] = int(size)
    return body


# ------------------------------------------------------------------------------------------------------ Qdrant
def qdrant_vector(vector: SparseVector) -> Any:
    """``qdrant_client.models.SparseVector`` when qdrant-client is installed, else ``{"indices", "values"}``."""
    d = vector.to_dict()
    try:
        from qdrant_client import models
    except ImportError:
        return d
    return models.SparseVector(indices=d["indices"], values=d["values"])


def qdrant_points(
    ids: Sequence[Union[int, str]],
    vectors: Sequence[SparseVector],
    *,
    name: str = "splade",
    payloads: Optional[Sequence[Dict[str, Any]]] = None,
) -> List[Any]:
    """``PointStruct``\\ s with the sparse vector under ``name`` (plain dicts without qdrant-client)."""
    out = []
    try:
        from qdrant_client import models
    except ImportError:
        models = None  # type: ignore[assignment]
    for n, (i, v) in enumerate(zip(ids, vectors, strict=True)):
        payload = None if payloads is None else payloads[n]
        if models is None:
            out.append({"id": i, "vector": {name: v.to_dict()}, "payload": payload})
        else:
            out.append(models.PointStruct(id=i, vector={name: qdrant_vector(v)}, payload=payload))
    return out


# ------------------------------------------------------------------------------------------------------ Pinecone
def pinecone_sparse_values(vector: SparseVector) -> Any:
    """``pinecone.SparseValues`` when the pinecone client is installed, else ``{"indices", "values"}``."""
    d = vector.to_dict()
    try:
        from pinecone import SparseValues
    except ImportError:
        return d
    return SparseValues(indices=d["indices"], values=d["values"])


def pinecone_vector(
    id: str, vector: SparseVector, *, dense: Optional[Sequence[float]] = None, metadata: Optional[Dict[str, Any]] = None
) -> Any:
    """An upsert record (``pinecone.Vector`` or its dict) carrying ``sparse_values`` (sparse-only or hybrid)."""
    sv = pinecone_sparse_values(vector)
    try:
        from pinecone import Vector
    except ImportError:
        rec: Dict[str, Any] = {"id": str(id), "sparse_values": sv}
        if dense is not None:
            rec["values"] = list(dense)
        if metadata is not None:
            rec["metadata"] = metadata
        return rec
    return Vector(id=str(id), values=list(dense) if dense is not None else [], sparse_values=sv, metadata=metadata)


# ------------------------------------------------------------------------------------------------------ Anserini
def quantize(vector: SparseVector, scale: float = 100.0) -> Dict[int, int]:
    """``{token_id: round(w * scale)}`` without the entries that round to 0."""
    q = np.rint(vector.values.astype(np.float64) * scale).astype(np.int64)
    keep = q > 0
    return dict(zip(vector.indices[keep].tolist(), q[keep].tolist(), strict=True))


def anserini_record(
    id: str, vector: SparseVector, vocab: Vocab, *, contents: str = "", scale: float = 100.0
) -> Dict[str, Any]:
    """One ``JsonVectorCollection`` record: ``{"id", "contents", "vector": {token: int_weight}}``."""
    v = _vocab(vocab)
    return {"id": str(id), "contents": contents, "vector": {v[i]: w for i, w in quantize(vector, scale).items()}}


def write_json_vector_collection(
    path: str,
    ids: Iterable[str],
    vectors: Iterable[SparseVector],
    vocab: Vocab,
    *,
    contents: Optional[Iterable[str]] = None,
    scale: float = 100.0,
) -> int:
    """Write one JSON record per line (Anserini ``-collection JsonVectorCollection -impact -pretokenized``); returns
    the number of records."""
    n = 0
    cit: Iterator[str] = iter(contents) if contents is not None else iter(lambda: "", None)
    with open(path, "w", encoding="utf-8") as f:
        for i, v in zip(ids, vectors, strict=True):
            f.write(json.dumps(anserini_record(i, v, vocab, contents=next(cit), scale=scale), ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def read_json_vector_collection(path: str, vocab: Vocab, *, scale: float = 100.0) -> List[Dict[str, Any]]:
    """Parse a ``JsonVectorCollection`` file back: ``[{"id", "contents", "vector": SparseVector}]``
    (weights / scale)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rec = json.loads(line)
                vec = from_token_weights({t: w / scale for t, w in rec["vector"].items()}, vocab)
                out.append({"id": rec["id"], "contents": rec.get("contents", ""), "vector": vec})
    return out
