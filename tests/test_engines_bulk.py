"""Bulk loading with each engine's own client.

OpenSearch and Elasticsearch: no server of either runs here, so the real ``opensearch-py`` / ``elasticsearch`` client
talks HTTP to a recorder started by the test on 127.0.0.1 (stdlib ``http.server``): it records every request and
answers the way the engine's REST API does (index creation, ``_bulk`` items with per-document status, ``_refresh``,
``_search``). The assertions are on the exact requests the clients sent. The recorder answers ``_search`` with a
plain dot product over the recorded documents' feature maps -- that checks what we send and parse, not the engine's
scoring. Qdrant runs for real in local mode.
"""

from __future__ import annotations

import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

import numpy as np
import pytest

from splade_onnx import Expander, SparseIndex, SparseVector
from splade_onnx.io import payloads as P
from splade_onnx.io.corpus import read_corpus


# ------------------------------------------------------------------------------------------------ the recorder
class Recorder:
    """A tiny HTTP server that records requests and answers like an OpenSearch / Elasticsearch node."""

    def __init__(self, product: str) -> None:
        self.product = product  # "opensearch" | "elasticsearch"
        self.requests: List[Dict[str, Any]] = []
        self.refuse: Dict[str, str] = {}  # id -> error type, answered with status 400 in _bulk items
        self.docs: Dict[str, Dict[str, Any]] = {}  # index/_id -> _source, as the engine would store them
        self.on_bulk = None  # optional callable run when a _bulk request arrives
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                ctype = "application/json"
                if rec.product == "elasticsearch":
                    self.send_header("X-Elastic-Product", "Elasticsearch")
                    ctype = "application/vnd.elasticsearch+json;compatible-with=9"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                path, _, query = self.path.partition("?")
                rec.requests.append(
                    {
                        "method": self.command,
                        "path": path,
                        "query": query,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": raw.decode("utf-8"),
                    }
                )
                parts = [p for p in path.split("/") if p]
                if parts and parts[-1] == "_bulk":
                    if rec.on_bulk is not None:
                        rec.on_bulk()
                    return self._answer(200, rec.bulk(raw.decode("utf-8"), parts[0] if len(parts) == 2 else None))
                if parts and parts[-1] == "_refresh":
                    return self._answer(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
                if parts and parts[-1] == "_search":
                    return self._answer(200, rec.search(parts[0], json.loads(raw or b"{}"), query))
                if self.command == "PUT" and len(parts) == 1:
                    return self._answer(200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]})
                if not parts:
                    return self._answer(
                        200,
                        {
                            "name": "recorder",
                            "version": {"number": "9.1.0" if rec.product == "elasticsearch" else "3.3.0"},
                        },
                    )
                return self._answer(404, {"error": {"type": "not_found", "reason": path}, "status": 404})

            do_GET = do_POST = do_PUT = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bulk(self, body: str, default_index: Any) -> Dict[str, Any]:
        lines = body.splitlines()
        assert body.endswith("\n") and len(lines) % 2 == 0, "a _bulk body is action/source line pairs + newline"
        items = []
        for a, s in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = json.loads(a).items()
            doc_id, index = meta["_id"], meta.get("_index", default_index)
            if doc_id in self.refuse:
                items.append(
                    {
                        op: {
                            "_index": index,
                            "_id": doc_id,
                            "status": 400,
                            "error": {"type": self.refuse[doc_id], "reason": f"failed to parse [{doc_id}]"},
                        }
                    }
                )
                continue
            self.docs[f"{index}/{doc_id}"] = json.loads(s)
            items.append({op: {"_index": index, "_id": doc_id, "status": 201, "result": "created"}})
        return {"took": 1, "errors": any(i[next(iter(i))]["status"] >= 300 for i in items), "items": items}

    def search(self, index: str, body: Dict[str, Any], query: str) -> Dict[str, Any]:
        q = body["query"]
        if "neural_sparse" in q:
            ((fld, spec),) = q["neural_sparse"].items()
            qv = spec["query_tokens"]
        else:
            fld, qv = q["sparse_vector"]["field"], q["sparse_vector"]["query_vector"]
        scores = []
        for key, src in self.docs.items():
            if key.startswith(index + "/"):
                s = sum(w * src[fld].get(t, 0.0) for t, w in qv.items())
                if s > 0:
                    scores.append((-s, key.split("/", 1)[1]))
        scores.sort()
        size = int(body.get("size", 10))
        return {
            "hits": {
                "total": {"value": len(scores)},
                "hits": [{"_index": index, "_id": d, "_score": -s} for s, d in scores[:size]],
            }
        }

    def bulk_requests(self) -> List[Dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/_bulk")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bulk_docs(rec: Recorder) -> List[Dict[str, Any]]:
    """Every (action, source) pair of every recorded _bulk request, in order."""
    out = []
    for r in rec.bulk_requests():
        lines = r["body"].splitlines()
        for a, s in zip(lines[::2], lines[1::2], strict=True):
            out.append({"action": json.loads(a), "source": json.loads(s)})
    return out


# ------------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def data(tiny_artifact, datasets_dir):
    e = Expander(tiny_artifact)
    ids, texts = read_corpus(datasets_dir / "scifact" / "corpus.jsonl", limit=120)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most abstracts are truncated at 128 tokens
        docs = e.encode_documents(texts, max_length=128)
    queries = e.encode_queries(
        [
            "ALDH1 expression and breast cancer prognosis",
            "0-dimensional biomaterials",
            "tumor suppressor genes in U.S. patients",
            "vitamin D and bone density",
            "e.g. i.e. the 3.5 mg dose",
        ]
    )
    return e, [str(i) for i in ids], texts, docs, queries


def dotted(e, vectors) -> int:
    return sum(any("." in e.vocab[i] for i in v.indices.tolist()) for v in vectors)


# ------------------------------------------------------------------------------------------------ OpenSearch
@pytest.fixture
def os_client():
    from opensearchpy import OpenSearch

    rec = Recorder("opensearch")
    client = OpenSearch(rec.url, timeout=30)
    yield rec, client
    client.close()
    rec.close()


def test_opensearch_bulk_load_streams_chunks_and_round_trips(os_client, data):
    from splade_onnx.engines import opensearch as osx

    rec, client = os_client
    e, ids, texts, docs, queries = data
    assert dotted(e, docs + queries) > 0, "the sample must hold tokens with a dot (rank_features refuses them)"
    osx.create_index(client, "scifact")
    put = rec.requests[-1]
    assert put["method"] == "PUT" and put["path"] == "/scifact"
    assert json.loads(put["body"]) == {
        "mappings": {"properties": {"passage_embedding": {"type": "rank_features"}, "passage_text": {"type": "text"}}}
    }
    pulled = [0]
    at_first_request: List[int] = []

    def gen():
        for v in docs:
            pulled[0] += 1
            yield v

    rec.on_bulk = lambda: at_first_request.append(pulled[0])
    n = osx.bulk_load(client, "scifact", iter(ids), gen(), e, texts=iter(texts), chunk_size=25, refresh=True)
    assert n == len(ids)
    bulks = rec.bulk_requests()
    assert [len(r["body"].splitlines()) // 2 for r in bulks] == [25, 25, 25, 25, 20]
    assert at_first_request[0] <= 26, "the vectors are streamed, not read whole before the first request"
    assert all(r["method"] == "POST" and r["path"] == "/_bulk" for r in bulks)
    assert all(r["headers"]["content-type"] == "application/json" for r in bulks)  # opensearch-py's choice
    sent = bulk_docs(rec)
    assert [d["action"] for d in sent] == [{"index": {"_index": "scifact", "_id": i}} for i in ids]
    for d, v, t in zip(sent, docs, texts, strict=True):
        feats = d["source"]["passage_embedding"]
        assert not any("." in tok for tok in feats), "rank_features refuses dots: they are replaced"
        assert P.from_token_weights(feats, e, dots="replace") == v  # every token, every weight exact
        assert d["source"]["passage_text"] == t
    assert any(r["path"] == "/scifact/_refresh" for r in rec.requests)


def test_opensearch_search_body_and_results(os_client, data):
    from splade_onnx.engines import opensearch as osx

    rec, client = os_client
    e, ids, texts, docs, queries = data
    osx.bulk_load(client, "scifact", ids, docs, e)
    ref = SparseIndex.from_vectors(docs, ids, vocab_size=e.vocab_size)
    for q in queries:
        hits = osx.search(client, "scifact", q, e, k=10)
        body = json.loads(rec.requests[-1]["body"])
        assert rec.requests[-1]["path"] == "/scifact/_search"
        assert body["size"] == 10 and body["_source"] is False
        tokens = body["query"]["neural_sparse"]["passage_embedding"]["query_tokens"]
        assert P.from_token_weights(tokens, e, dots="replace") == q
        want = ref.search(q, k=10)
        assert [h[0] for h in hits] == [h[0] for h in want]
        np.testing.assert_allclose([h[1] for h in hits], [h[1] for h in want], rtol=1e-5)


def test_opensearch_partial_failure_lists_the_refused_ids(os_client, data):
    from splade_onnx.engines import opensearch as osx

    rec, client = os_client
    e, ids, _, docs, _ = data
    bad = {ids[3]: "mapper_parsing_exception", ids[57]: "illegal_argument_exception", ids[-1]: "version_conflict"}
    rec.refuse.update(bad)
    with pytest.raises(P.BulkLoadError) as ei:
        osx.bulk_load(client, "scifact", ids, docs, e, chunk_size=40)
    err = ei.value
    assert set(err.failed) == set(bad) and err.loaded == len(ids) - len(bad)
    for i, kind in bad.items():
        assert i in str(err) and kind in err.failed[i] and "status 400" in err.failed[i]
    sent = [d["action"]["index"]["_id"] for d in bulk_docs(rec)]
    assert sorted(sent) == sorted(ids), "every document was sent once, refused ones included"
    assert sorted(k.split("/")[1] for k in rec.docs) == sorted(set(ids) - set(bad))


def test_bad_input_is_refused_before_it_is_sent(os_client, data):
    from splade_onnx.engines import opensearch as osx

    rec, client = os_client
    e, ids, _, docs, _ = data
    dup = ids[:12] + [ids[4]] + ids[13:30]
    with pytest.raises(ValueError, match=f"duplicate id '{ids[4]}' at position 12"):
        osx.bulk_load(client, "scifact", dup, docs[:30], e, chunk_size=5)
    sent = [d["action"]["index"]["_id"] for d in bulk_docs(rec)]
    assert sent == ids[:10], "the chunks before the repeated id went out, nothing after it"
    rec.requests.clear()
    with pytest.raises(ValueError, match="same length"):
        osx.bulk_load(client, "scifact", ids[:10], docs[:9], e)
    with pytest.raises(ValueError, match="same length"):
        osx.bulk_load(client, "scifact", ids[:9], docs[:10], e)
    with pytest.raises(TypeError, match="not a SparseVector"):
        osx.bulk_load(client, "scifact", ids[:2], [docs[0], {"indices": [1]}], e)


# ------------------------------------------------------------------------------------------------ Elasticsearch
@pytest.fixture
def es_client():
    from elasticsearch import Elasticsearch

    rec = Recorder("elasticsearch")
    client = Elasticsearch(rec.url, request_timeout=30)
    yield rec, client
    client.close()
    rec.close()


def test_elasticsearch_bulk_load_and_search(es_client, data):
    from splade_onnx.engines import elasticsearch as esx

    rec, client = es_client
    e, ids, texts, docs, queries = data
    esx.create_index(client, "scifact")
    put = rec.requests[-1]
    assert put["method"] == "PUT" and put["path"] == "/scifact"
    assert json.loads(put["body"]) == {
        "mappings": {"properties": {"splade": {"type": "sparse_vector"}, "text": {"type": "text"}}}
    }
    n = esx.bulk_load(
        client, "scifact", (i for i in ids), (v for v in docs), e, texts=texts, chunk_size=50, refresh=True
    )
    assert n == len(ids)
    bulks = rec.bulk_requests()
    assert [len(r["body"].splitlines()) // 2 for r in bulks] == [50, 50, 20]
    assert all("ndjson" in r["headers"]["content-type"] for r in bulks)
    sent = bulk_docs(rec)
    assert [d["action"] for d in sent] == [{"index": {"_index": "scifact", "_id": i}} for i in ids]
    for d, v, t in zip(sent, docs, texts, strict=True):
        assert P.from_token_weights(d["source"]["splade"], e) == v  # dots kept (8.16+ accepts them)
        assert d["source"]["text"] == t
    ref = SparseIndex.from_vectors(docs, ids, vocab_size=e.vocab_size)
    for q in queries:
        hits = esx.search(client, "scifact", q, e, k=10)
        body = json.loads(rec.requests[-1]["body"])
        assert rec.requests[-1]["path"] == "/scifact/_search"
        assert body["query"]["sparse_vector"]["field"] == "splade" and body["size"] == 10
        assert P.from_token_weights(body["query"]["sparse_vector"]["query_vector"], e) == q
        want = ref.search(q, k=10)
        assert [h[0] for h in hits] == [h[0] for h in want]


def test_elasticsearch_dots_replace_and_partial_failure(es_client, data):
    from splade_onnx.engines import elasticsearch as esx

    rec, client = es_client
    e, ids, _, docs, queries = data
    bad = {ids[0]: "document_parsing_exception", ids[99]: "document_parsing_exception"}
    rec.refuse.update(bad)
    with pytest.raises(P.BulkLoadError, match="Elasticsearch refused 2 document") as ei:
        esx.bulk_load(client, "old", ids, docs, e, dots="replace", chunk_size=64)
    assert set(ei.value.failed) == set(bad) and ei.value.loaded == len(ids) - 2
    for d, v in zip(bulk_docs(rec), docs, strict=True):
        assert not any("." in t for t in d["source"]["splade"])
        assert P.from_token_weights(d["source"]["splade"], e, dots="replace") == v
    body = esx.search_body(queries[4], e, dots="replace")
    assert P.from_token_weights(body["query"]["sparse_vector"]["query_vector"], e, dots="replace") == queries[4]


def test_dots_replace_is_lossless_and_refuses_clashes():
    vocab = ["[PAD]", "a.b", "x", "...", "##."]
    v = SparseVector(np.array([1, 2, 3, 4], np.int32), np.array([0.5, 1.5, 0.25, 2.0], np.float32))
    tw = P.token_weights(v, vocab, dots="replace")
    assert set(tw) == {"a\u2024b", "x", "\u2024\u2024\u2024", "##\u2024"}
    assert P.from_token_weights(tw, vocab, dots="replace") == v
    with pytest.raises(ValueError, match="merge tokens"):
        P.token_weights(v, vocab + ["a\u2024b"], dots="replace")
    with pytest.raises(ValueError, match="dots must be one of"):
        P.token_weights(v, vocab, dots="strip")


# ------------------------------------------------------------------------------------------------ Qdrant (real)
def _same_top(hits, want, rtol=1e-5):
    """Same scores, and the same ids except where two scores are within rtol (float32 sums may swap them)."""
    assert len(hits) == len(want)
    np.testing.assert_allclose([h[1] for h in hits], [w[1] for w in want], rtol=rtol)
    for (hd, hs), (wd, ws) in zip(hits, want, strict=True):
        if hd != wd:
            near = [d for d, s in want if abs(s - hs) <= rtol * abs(hs)]
            assert hd in near, f"{hd} ({hs}) is not tied with {wd} ({ws})"


def test_qdrant_local_upload_and_search_equal_sparse_index(data, tmp_path):
    qdrant_client = pytest.importorskip("qdrant_client", reason="qdrant-client is in the [qdrant] extra")
    from splade_onnx.engines import qdrant as qx

    e, ids, texts, docs, queries = data
    client = qdrant_client.QdrantClient(path=str(tmp_path / "qdrant"))
    qx.create_collection(client, "scifact")
    n = qx.bulk_load(client, "scifact", iter(ids), iter(docs), texts=iter(texts), batch_size=32)
    assert n == len(ids) and client.count("scifact", exact=True).count == len(ids)
    ref = SparseIndex.from_vectors(docs, ids, vocab_size=e.vocab_size)
    for q in queries:
        _same_top(qx.search(client, "scifact", q, k=10), ref.search(q, k=10))
    # the stored vectors are the vectors sent, and string ids map to stable UUIDs with the id in the payload
    pid = qx.point_id(ids[7])
    assert pid == qx.point_id(ids[7]) != ids[7]
    got = client.retrieve("scifact", ids=[pid], with_vectors=True, with_payload=True)[0]
    assert got.payload == {"doc_id": ids[7], "text": texts[7]}
    assert got.vector["splade"].indices == docs[7].indices.tolist()
    np.testing.assert_array_equal(np.asarray(got.vector["splade"].values, np.float32), docs[7].values)
    client.close()
    reopened = qdrant_client.QdrantClient(path=str(tmp_path / "qdrant"))
    assert reopened.count("scifact", exact=True).count == len(ids)
    reopened.close()


def test_qdrant_idf_modifier_matches_bm25_idf_on_unit_queries(data):
    qdrant_client = pytest.importorskip("qdrant_client", reason="qdrant-client is in the [qdrant] extra")
    from splade_onnx.engines import qdrant as qx

    e, ids, _, docs, queries = data
    client = qdrant_client.QdrantClient(":memory:")
    qx.create_collection(client, "idf", idf=True)
    assert qx.bulk_load(client, "idf", range(len(ids)), docs) == len(ids)
    info = client.get_collection("idf").config.params.sparse_vectors["splade"]
    assert str(info.modifier).lower().endswith("idf")
    df = np.zeros(e.vocab_size)
    for v in docs:
        df[v.indices] += 1
    N = len(docs)
    ref = SparseIndex.from_vectors(docs, list(range(N)), vocab_size=e.vocab_size)
    for q in queries:
        uq = qx.unit_query(q)
        assert np.all(uq.values == 1) and np.array_equal(uq.indices, q.indices)
        idf = np.log(1 + (N - df[q.indices] + 0.5) / (df[q.indices] + 0.5))
        want = ref.search(SparseVector(q.indices, idf.astype(np.float32)), k=10)
        _same_top(qx.search(client, "idf", uq, k=10), want, rtol=1e-4)
    client.close()
