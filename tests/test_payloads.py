"""Payloads for search engines, round-tripped: parse back and compare, and a real Qdrant (local mode) search."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splade_onnx import Expander
from splade_onnx.io import payloads as P


@pytest.fixture(scope="module")
def enc(tiny_artifact, scifact_texts):
    e = Expander(tiny_artifact)
    docs = scifact_texts[40:70]
    dv = e.encode_documents(docs, max_length=128)
    qv = e.encode_queries(
        ["ALDH1 expression and breast cancer prognosis", "0-dimensional biomaterials", "tumor suppressor genes"]
    )
    return e, docs, dv, qv


def test_opensearch_bulk_and_query_round_trip(enc):
    e, docs, dv, qv = enc
    body = P.opensearch_bulk(dv[:5], e, index="scifact", ids=[f"d{i}" for i in range(5)], texts=docs[:5])
    lines = body.splitlines()
    assert body.endswith("\n") and len(lines) == 10
    for n in range(5):
        assert json.loads(lines[2 * n]) == {"index": {"_index": "scifact", "_id": f"d{n}"}}
        src = json.loads(lines[2 * n + 1])
        assert src["passage_text"] == docs[n]
        assert P.from_token_weights(src["passage_embedding"], e) == dv[n]  # exact: float32 -> JSON -> float32
    q = json.loads(json.dumps(P.opensearch_query(qv[0], e, size=10)))
    tokens = q["query"]["neural_sparse"]["passage_embedding"]["query_tokens"]
    assert P.from_token_weights(tokens, e) == qv[0] and q["size"] == 10
    assert list(tokens.values()) == sorted(tokens.values(), reverse=True)
    # wordpieces are kept as the tokenizer spells them
    wp = e.encode_queries("tokenizing unbelievably")
    assert any(t.startswith("##") for t in P.token_weights(wp, e))


def test_elasticsearch_sparse_vector_round_trip_and_dots(enc):
    e, _, dv, qv = enc
    doc = json.loads(json.dumps(P.elasticsearch_document(dv[0], e, field="ml.tokens", text="x")))
    assert P.from_token_weights(doc["ml.tokens"], e) == dv[0] and doc["text"] == "x"
    q = P.elasticsearch_query(qv[1], e)["query"]["sparse_vector"]
    assert q["field"] == "ml.tokens" and P.from_token_weights(q["query_vector"], e) == qv[1]
    dotted = e.encode_queries("e.g. i.e. U.S.A.")
    toks = P.token_weights(dotted, e)
    assert "." in toks
    dropped = P.token_weights(dotted, e, dots="drop")
    assert "." not in dropped and set(dropped) == {t for t in toks if "." not in t}
    with pytest.raises(ValueError, match="dot"):
        P.elasticsearch_query(dotted, e, dots="error")


def test_anserini_json_vector_collection_round_trip(enc, tmp_path):
    e, docs, dv, _ = enc
    path = tmp_path / "collection.jsonl"
    n = P.write_json_vector_collection(str(path), [f"doc{i}" for i in range(len(dv))], dv, e, contents=docs)
    assert n == len(dv)
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert set(raw[0]) == {"id", "contents", "vector"} and raw[0]["contents"] == docs[0]
    assert all(isinstance(w, int) and w > 0 for r in raw for w in r["vector"].values())
    back = P.read_json_vector_collection(str(path), e)
    for v, b in zip(dv, back):
        q = np.rint(v.values * 100)
        kept = v.indices[q > 0]
        assert b["vector"].indices.tolist() == kept.tolist()  # only weights that round to 0 are dropped
        np.testing.assert_allclose(b["vector"].values, v.values[q > 0], atol=0.005 + 1e-7)


def test_qdrant_local_mode_search_matches_our_dot_product(enc):
    qdrant_client = pytest.importorskip("qdrant_client")
    from qdrant_client import models

    e, _, dv, qv = enc
    assert isinstance(P.qdrant_vector(dv[0]), models.SparseVector)
    client = qdrant_client.QdrantClient(":memory:")
    client.create_collection(
        "scifact", vectors_config={}, sparse_vectors_config={"splade": models.SparseVectorParams()}
    )
    client.upsert(
        "scifact",
        points=P.qdrant_points(list(range(len(dv))), dv, name="splade", payloads=[{"n": i} for i in range(len(dv))]),
    )
    for q in qv:
        ours = np.array([q.dot(d) for d in dv])
        res = client.query_points("scifact", query=P.qdrant_vector(q), using="splade", limit=5).points
        assert res[0].id == int(np.argmax(ours))
        for p in res:
            assert p.score == pytest.approx(ours[p.id], rel=1e-5)
        got = client.retrieve("scifact", ids=[res[0].id], with_vectors=True)[0].vector["splade"]
        assert got.indices == dv[res[0].id].indices.tolist()
        np.testing.assert_allclose(got.values, dv[res[0].id].values, rtol=1e-6)


def test_pinecone_types(enc):
    pinecone = pytest.importorskip("pinecone")
    _, _, dv, _ = enc
    sv = P.pinecone_sparse_values(dv[0])
    assert isinstance(sv, pinecone.SparseValues)
    assert sv.indices == dv[0].indices.tolist() and np.allclose(sv.values, dv[0].values)
    rec = P.pinecone_vector("d0", dv[0], metadata={"source": "scifact"})
    assert isinstance(rec, pinecone.Vector) and rec.sparse_values == sv and rec.id == "d0"


def test_plain_dict_fallbacks_have_the_wire_format(enc, monkeypatch):
    """Without the client libraries the functions return the documented JSON shapes."""
    import builtins

    real_import = builtins.__import__

    def no_clients(name, *a, **k):
        if name.startswith(("qdrant_client", "pinecone")):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_clients)
    _, _, dv, _ = enc
    d = P.qdrant_vector(dv[0])
    assert d == {"indices": dv[0].indices.tolist(), "values": dv[0].values.tolist()}
    assert P.qdrant_points([7], [dv[0]], name="s")[0] == {"id": 7, "vector": {"s": d}, "payload": None}
    assert P.pinecone_vector("a", dv[0], dense=[0.1]) == {"id": "a", "sparse_values": d, "values": [0.1]}
    json.dumps(P.pinecone_vector("a", dv[0]))
