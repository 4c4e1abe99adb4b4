"""`splade-onnx serve`: the real server in a subprocess on a free port, spoken to over HTTP.

Every answer is checked against the in-process Expander / SparseIndex (same indices, values within 1e-6 after the
JSON round trip); every bad input and overload case gets its status code and TEI's error body, and the server keeps
answering afterwards; SIGTERM with requests in flight loses none of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from splade_onnx import Expander, SparseIndex
from splade_onnx.io import payloads

QUERIES = [
    "what is splade?",
    "0-dimensional biomaterials show inductive properties.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
    "희소 검색 🙂",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m splade_onnx serve ...` in a subprocess; its log goes to a file (read on failure)."""

    def __init__(self, artifact: str, log: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_f = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "splade_onnx", "serve", artifact, "--port", str(self.port), *args],
            stdout=self._log_f,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90.0) -> "Server":
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not ready in {timeout}s: {self.log.read_text()[-3000:]}")

    def post(self, path: str, body=None, **kw) -> httpx.Response:
        if body is not None and "content" not in kw:
            kw["json"] = body
        return httpx.post(self.url + path, timeout=60, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_f.close()


@pytest.fixture(scope="module")
def expander(tiny_artifact):
    return Expander(tiny_artifact)


@pytest.fixture(scope="module")
def docs(scifact_texts):
    return scifact_texts[-60:]  # the longest ones: over 256 tokens, so truncation is exercised


@pytest.fixture(scope="module")
def index_dir(expander, scifact_texts, tmp_path_factory):
    texts = scifact_texts[:80]
    idx = SparseIndex.from_expander(expander, texts, [f"d{i}" for i in range(len(texts))], store_texts=True)
    out = tmp_path_factory.mktemp("serve") / "index"
    idx.save(str(out))
    return str(out)


@pytest.fixture(scope="module")
def servers(tiny_artifact, index_dir, tmp_path_factory):
    """Four servers started together: main (with an index), a tiny queue, a tiny timeout, and one to SIGTERM."""
    logs = tmp_path_factory.mktemp("serve-logs")
    started = {
        "main": Server(
            tiny_artifact,
            logs / "main.log",
            "--index",
            index_dir,
            "--max-request-texts",
            "8",
            "--max-body-bytes",
            "200000",
        ),
        "queue": Server(tiny_artifact, logs / "queue.log", "--max-queue", "4", "--max-wait-ms", "0"),
        "timeout": Server(tiny_artifact, logs / "timeout.log", "--timeout-s", "0.001"),
        "term": Server(tiny_artifact, logs / "term.log", "--max-request-texts", "8"),
    }
    try:
        for s in started.values():
            s.wait_ready()
        yield started
    finally:
        for s in started.values():
            s.stop()


def assert_same(got, vec) -> None:
    """A TEI sparse embedding ([{"index", "value"}]) equals an in-process SparseVector."""
    assert [set(e) for e in got] == [{"index", "value"}] * len(got)
    idx = np.array([e["index"] for e in got])
    val = np.array([e["value"] for e in got])
    np.testing.assert_array_equal(idx, vec.indices)
    np.testing.assert_allclose(val, vec.values, rtol=0, atol=1e-6)


def assert_error(r: httpx.Response, status: int, error_type: str, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "error_type"}, body
    assert body["error_type"] == error_type, body
    for w in words:
        assert w in body["error"], body


# ---------------------------------------------------------------------------------------------------- contract
def test_embed_sparse_tei_contract(servers, expander, docs):
    s = servers["main"]
    r = s.post("/embed_sparse", {"inputs": docs[0]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    single = r.json()
    assert isinstance(single, list) and len(single) == 1
    ref = expander.encode_documents(docs[:5])
    assert_same(single[0], ref[0])
    batch = s.post("/embed_sparse", {"inputs": docs[:5], "truncate": True}).json()
    assert len(batch) == 5
    for got, vec in zip(batch, ref, strict=False):
        assert_same(got, vec)
    # prompt_name "query" encodes with the query length and role
    q = s.post("/embed_sparse", {"inputs": QUERIES, "prompt_name": "query"}).json()
    for got, vec in zip(q, expander.encode_queries(QUERIES), strict=False):
        assert_same(got, vec)
    # TEI: truncate false and a text over the limit is a 413 validation error; short texts pass
    assert_error(
        s.post("/embed_sparse", {"inputs": [QUERIES[0], docs[-1]], "truncate": False}),
        413,
        "validation",
        "inputs[1]",
        "256 tokens",
    )
    ok = s.post("/embed_sparse", {"inputs": QUERIES[:2], "truncate": False})
    assert ok.status_code == 200


def test_expand_roles_pruning_tokens_and_payloads(servers, expander, docs):
    s = servers["main"]
    r = s.post("/expand", {"inputs": QUERIES, "role": "query"}).json()
    assert r["role"] == "query"
    for got, vec in zip(r["vectors"], expander.encode_queries(QUERIES), strict=False):
        assert got["indices"] == vec.indices.tolist() and got["nnz"] == vec.nnz
        np.testing.assert_allclose(got["values"], vec.values, atol=1e-6, rtol=0)
        assert "tokens" not in got and "payload" not in got
    vec = expander.encode_documents(docs[:1], prune=("top_k", 7))[0]
    r = s.post("/expand", {"inputs": docs[:1], "prune": {"method": "top_k", "value": 7}, "top_k": 3}).json()
    got = r["vectors"][0]
    assert got["indices"] == vec.indices.tolist() and got["nnz"] == 7
    assert [t for t, _ in got["tokens"]] == [t for t, _ in expander.decode(vec, 3)]
    full = expander.encode_documents(docs[:1])[0]
    qv = expander.encode_queries(QUERIES[:1])[0]
    cases = [
        ("opensearch", "document", payloads.opensearch_document(full, expander)),
        ("opensearch", "query", payloads.opensearch_query(qv, expander)),
        ("elasticsearch", "document", payloads.elasticsearch_document(full, expander, field="f")),
        ("elasticsearch", "query", payloads.elasticsearch_query(qv, expander)),
        ("qdrant", "document", full.to_dict()),
    ]
    for fmt, role, want in cases:
        body = {"inputs": QUERIES[:1] if role == "query" else docs[:1], "role": role, "format": fmt}
        if fmt == "elasticsearch" and role == "document":
            body["field"] = "f"
        got = s.post("/expand", body).json()["vectors"][0]["payload"]
        _close_payload(got, want)


def _close_payload(got, want) -> None:
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            _close_payload(got[k], want[k])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=False):
            _close_payload(a, b)
    elif isinstance(want, float):
        assert abs(got - want) <= 1e-6
    else:
        assert got == want


def test_search_with_explain_equals_in_process(servers, expander, index_dir):
    s = servers["main"]
    idx = SparseIndex.load(index_dir)
    qvecs = expander.encode_queries(QUERIES)
    want = idx.search(qvecs, k=5)
    r = s.post("/search", {"queries": QUERIES, "k": 5, "explain": 4})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == len(QUERIES)
    for qv, hits, ref in zip(qvecs, res, want, strict=False):
        assert [h["id"] for h in hits] == [d for d, _ in ref]
        np.testing.assert_allclose([h["score"] for h in hits], [sc for _, sc in ref], rtol=1e-6)
        for h in hits:
            assert h["text"] == idx.text(h["id"])
            contrib = idx.explain(qv, h["id"], 4)
            assert [c["token"] for c in h["explain"]] == [c.token for c in contrib]
            assert len(h["explain"]) <= 4
            for c in h["explain"]:
                assert abs(c["query_weight"] * c["doc_weight"] - c["product"]) < 1e-5
    # the same search from vectors (as /expand or TEI return them), without texts
    vec_body = [{"indices": v.indices.tolist(), "values": v.values.tolist()} for v in qvecs[:2]]
    tei_body = [
        [{"index": i, "value": w} for i, w in zip(v.indices.tolist(), v.values.tolist(), strict=True)]
        for v in qvecs[2:]
    ]
    r2 = s.post("/search", {"vectors": vec_body + tei_body, "k": 5, "texts": False}).json()["results"]
    assert [[h["id"] for h in hits] for hits in r2] == [[d for d, _ in ref] for ref in want]
    assert all("text" not in h for hits in r2 for h in hits)


BAD = [
    (b"{not json", 422, "validation", ["not valid JSON"]),
    (b"", 422, "validation", ["empty"]),
    (b"[1, 2]", 422, "validation", ["JSON object", "array"]),
    ({"input": "x"}, 422, "validation", ["missing field `inputs`"]),
    ({"inputs": 3}, 422, "validation", ["`inputs`", "number"]),
    ({"inputs": None}, 422, "validation", ["`inputs`", "null"]),
    ({"inputs": ["ok", 5]}, 422, "validation", ["`inputs[1]`", "number"]),
    ({"inputs": ["ok", ["nested"]]}, 422, "validation", ["`inputs[1]`", "array"]),
    ({"inputs": []}, 422, "validation", ["cannot be empty"]),
    ({"inputs": ""}, 422, "tokenizer", ["`inputs[0]`", "empty"]),
    ({"inputs": ["fine", "   \n"]}, 422, "tokenizer", ["`inputs[1]`", "whitespace"]),
    ({"inputs": ["fine", "\u0001\u0002"]}, 422, "tokenizer", ["`inputs[1]`", "control"]),
    ({"inputs": "x", "truncate": "yes"}, 422, "validation", ["`truncate`", "boolean"]),
    ({"inputs": "x", "prompt_name": "passage"}, 422, "validation", ["`prompt_name`"]),
    ({"inputs": ["a"] * 9}, 413, "validation", ["batch size 9 > maximum allowed batch size 8"]),
    ({"inputs": "x" * 300_000}, 413, "validation", ["bytes"]),
]


@pytest.mark.parametrize("body,status,etype,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_embed_sparse(servers, body, status, etype, words):
    s = servers["main"]
    kw = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) else {}
    r = s.post("/embed_sparse", None if isinstance(body, bytes) else body, **kw)
    assert_error(r, status, etype, *words)
    assert s.post("/embed_sparse", {"inputs": "still up"}).status_code == 200


BAD_OTHER = [
    ("/expand", {"inputs": "x", "role": "passage"}, 422, ["`role`"]),
    ("/expand", {"inputs": "x", "prune": "top_k"}, 422, ["`prune`"]),
    ("/expand", {"inputs": "x", "prune": {"method": "max_ratio", "value": 2}}, 422, ["`prune`", "[0, 1)"]),
    ("/expand", {"inputs": "x", "top_k": 0}, 422, ["`top_k`"]),
    ("/expand", {"inputs": "x", "top_k": "5"}, 422, ["`top_k`", "integer"]),
    ("/expand", {"inputs": "x", "format": "solr"}, 422, ["`format`"]),
    ("/search", {"queries": "x", "k": 0}, 422, ["`k`"]),
    ("/search", {"queries": "x", "explain": "yes"}, 422, ["`explain`"]),
    ("/search", {"k": 3}, 422, ["exactly one of `queries`"]),
    ("/search", {"queries": "x", "vectors": []}, 422, ["exactly one of"]),
    ("/search", {"vectors": [{"indices": [1, 2], "values": [1.0]}]}, 422, ["same length"]),
    ("/search", {"vectors": [{"indices": [99999999], "values": [1.0]}]}, 422, ["token ids"]),
    ("/search", {"vectors": [{"indices": [3, 3], "values": [1.0, 1.0]}]}, 422, ["repeat"]),
    ("/search", {"vectors": ["x"]}, 422, ["`vectors[0]`"]),
]


@pytest.mark.parametrize("path,body,status,words", BAD_OTHER, ids=[str(i) for i in range(len(BAD_OTHER))])
def test_bad_input_expand_search(servers, path, body, status, words):
    s = servers["main"]
    assert_error(s.post(path, body), status, "validation", *words)
    assert s.post("/search", {"queries": "still up", "k": 1}).status_code == 200


def test_routes_methods_and_no_index(servers):
    s = servers["main"]
    assert_error(httpx.get(s.url + "/embed_sparse"), 405, "validation", "does not take GET")
    assert_error(httpx.get(s.url + "/nothing-here"), 404, "validation", "/nothing-here")
    assert_error(servers["queue"].post("/search", {"queries": "x"}), 404, "validation", "--index")


def test_health_info_metrics(servers, tiny_artifact):
    s = servers["main"]
    assert httpx.get(s.url + "/health").json() == {"status": "ok"}
    info = httpx.get(s.url + "/info").json()
    assert info["max_client_batch_size"] == 8 and info["max_input_length"] == 256
    assert info["vocab_size"] == 30522 and info["index"]["documents"] == 80
    assert info["manifest"]["max_length"]["query"] == 64 and "onnxruntime" in info["versions"]
    s.post("/embed_sparse", {"inputs": ["a b c", "d e f"]})
    s.post("/embed_sparse", {"inputs": 7})
    text = httpx.get(s.url + "/metrics").text
    for name in (
        'splade_onnx_requests_total{endpoint="embed_sparse",status="200"}',
        'splade_onnx_request_errors_total{endpoint="embed_sparse",error_type="validation"}',
        "splade_onnx_batch_size_bucket",
        "splade_onnx_queue_depth",
        "splade_onnx_request_duration_seconds_bucket",
        'splade_onnx_inference_duration_seconds_count{role="document"}',
    ):
        assert name in text, name
    texts = [ln for ln in text.splitlines() if ln.startswith('splade_onnx_texts_total{role="document"}')]
    assert texts and float(texts[0].split()[-1]) >= 3


# ---------------------------------------------------------------------------------------------------- batching
def test_concurrent_requests_merge_and_a_bad_text_fails_only_its_request(servers, expander):
    s = servers["main"]
    texts = [f"question number {i} about {w}" for i, w in enumerate(["cells", "genes", "cancer", "viruses"] * 6)]
    ref = expander.encode_queries(texts)

    def metric(name: str) -> float:
        for ln in httpx.get(s.url + "/metrics").text.splitlines():
            if ln.startswith(name + " ") or ln.startswith(name + '{role="query"}'):
                return float(ln.split()[-1])
        return 0.0

    batches0 = metric("splade_onnx_batch_size_count")
    barrier = threading.Barrier(len(texts) + 1)

    def call(i: int):
        barrier.wait()
        if i == len(texts):  # the bad one: passes the request checks, refused by the model inside the batch
            return s.post("/embed_sparse", {"inputs": ["fine", "\u0001\u0002"], "prompt_name": "query"})
        return s.post("/embed_sparse", {"inputs": texts[i], "prompt_name": "query"})

    with concurrent.futures.ThreadPoolExecutor(len(texts) + 1) as pool:
        rs = list(pool.map(call, range(len(texts) + 1)))
    for r, vec in zip(rs, ref, strict=False):
        assert r.status_code == 200, r.text
        assert_same(r.json()[0], vec)
    assert_error(rs[-1], 422, "tokenizer", "`inputs[1]`")
    batches = metric("splade_onnx_batch_size_count") - batches0
    assert 1 <= batches < len(texts) + 1  # requests were merged


def test_batcher_merges_concurrent_requests_and_isolates_bad_texts(tiny_artifact, expander):
    """In process: requests submitted together form one call; each gets its own vectors, in order."""
    from splade_onnx.serve.batcher import DynamicBatcher
    from splade_onnx.serve.service import Service

    svc = Service(expander)
    seen = []
    groups = [["alpha beta", "gamma"], ["\u0001"], ["delta", "epsilon zeta", "eta"], ["theta"]]

    async def main():
        b = DynamicBatcher(svc.encode, max_wait_ms=50, observe=lambda *a: seen.append(a))
        b.start()
        for _ in groups:
            b.enter()
        outs = await asyncio.gather(*[b.submit("query", g, 4) for g in groups])
        for _ in groups:
            b.leave()
        await b.close()
        return outs

    outs = asyncio.run(main())
    assert len(seen) == 1 and seen[0][1] == 7 and seen[0][2] == 4  # one call: 7 texts of 4 requests
    for g, out in zip(groups, outs, strict=False):
        assert len(out) == len(g)
        for t, v in zip(g, out, strict=False):
            if t == "\u0001":
                assert isinstance(v, ValueError) and "control" in str(v)
            else:
                ref = expander.encode_queries([t])[0]
                np.testing.assert_array_equal(v.indices, ref.indices)
                np.testing.assert_allclose(v.values, ref.values, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------- overload
def test_full_queue_503_with_retry_after_then_recovers(servers, expander, docs):
    s = servers["queue"]
    body = {"inputs": docs[:2]}
    ref = expander.encode_documents(docs[:2])

    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64)) as c:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            rs = list(pool.map(lambda _: c.post(s.url + "/embed_sparse", json=body), range(32)))
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503} and 503 in codes and 200 in codes, codes
    for r in rs:
        if r.status_code == 503:
            assert r.headers["retry-after"] == "1"
            assert_error(r, 503, "overloaded", "queue is full")
        else:
            for got, vec in zip(r.json(), ref, strict=False):
                assert_same(got, vec)
    r = s.post("/embed_sparse", body)
    assert r.status_code == 200
    assert (
        'splade_onnx_request_errors_total{endpoint="embed_sparse",error_type="overloaded"}'
        in httpx.get(s.url + "/metrics").text
    )


def test_timeout_504_and_the_queue_empties(servers, docs):
    s = servers["timeout"]
    r = s.post("/embed_sparse", {"inputs": docs[:8]})
    assert_error(r, 504, "backend", "0.001 s")
    assert r.headers["retry-after"] == "1"
    assert httpx.get(s.url + "/health").status_code == 200
    deadline = time.time() + 30
    while time.time() < deadline:
        m = httpx.get(s.url + "/metrics").text
        if "splade_onnx_queue_depth 0.0" in m:
            break
        time.sleep(0.1)
    assert "splade_onnx_queue_depth 0.0" in m


def test_sigterm_answers_every_accepted_request(servers, expander, docs):
    s = servers["term"]
    n = 8
    bodies = [{"inputs": docs[i * 3 : (i + 1) * 3]} for i in range(n)]
    refs = [expander.encode_documents(b["inputs"]) for b in bodies]
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        futs = [pool.submit(s.post, "/embed_sparse", b) for b in bodies]
        deadline = time.time() + 30
        while time.time() < deadline:  # every request accepted (in flight) before the signal
            m = httpx.get(s.url + "/metrics").text
            inflight = [ln for ln in m.splitlines() if ln.startswith("splade_onnx_requests_in_flight ")]
            if inflight and float(inflight[0].split()[-1]) >= n:
                break
            time.sleep(0.02)
        s.proc.send_signal(signal.SIGTERM)
        rs = [f.result() for f in futs]
    for r, ref in zip(rs, refs, strict=False):
        assert r.status_code == 200, r.text
        for got, vec in zip(r.json(), ref, strict=False):
            assert_same(got, vec)
    assert s.proc.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/health", timeout=2)


# ---------------------------------------------------------------------------------------------------- lambda, boundary
LAMBDA = r"""
import json, sys, time
t0 = time.perf_counter()
from splade_onnx.serve.lambda_handler import handler
events = [
    {"httpMethod": "POST", "path": "/prod/embed_sparse", "body": json.dumps({"inputs": sys.argv[1:]})},
    {"requestContext": {"http": {"method": "POST"}}, "rawPath": "/expand", "isBase64Encoded": False,
     "body": json.dumps({"inputs": sys.argv[1:], "role": "query"})},
    {"httpMethod": "POST", "path": "/embed_sparse", "body": json.dumps({"inputs": 5})},
    {"httpMethod": "GET", "path": "/health"},
]
out = [handler(e, None) for e in events]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "starlette", "uvicorn"))
print(json.dumps({"out": out, "heavy": heavy}))
"""


def test_lambda_handler_in_a_fresh_process(tiny_artifact, expander):
    env = dict(os.environ, SPLADE_ONNX_MODEL=tiny_artifact)
    p = subprocess.run(
        [sys.executable, "-c", LAMBDA, *QUERIES[:2]], capture_output=True, text=True, env=env, timeout=120
    )
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["heavy"] == []  # no web framework, no torch
    emb, exp, bad, health = res["out"]
    assert emb["statusCode"] == 200 and emb["headers"]["content-type"] == "application/json"
    for got, vec in zip(json.loads(emb["body"]), expander.encode_documents(QUERIES[:2]), strict=False):
        assert_same(got, vec)
    for got, vec in zip(json.loads(exp["body"])["vectors"], expander.encode_queries(QUERIES[:2]), strict=False):
        assert got["indices"] == vec.indices.tolist()
    assert bad["statusCode"] == 422 and json.loads(bad["body"])["error_type"] == "validation"
    assert health["statusCode"] == 200


BOUNDARY = r"""
import json, sys
import splade_onnx
from splade_onnx.cli.main import build_parser
build_parser()
before = "splade_onnx.serve" in sys.modules
from splade_onnx import Expander
from splade_onnx.serve import create_app
app = create_app(Expander(sys.argv[1]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum"))
print(json.dumps({"before": before, "heavy": heavy}))
"""


def test_serve_is_imported_only_when_serving_and_never_imports_torch(tiny_artifact):
    p = subprocess.run([sys.executable, "-c", BOUNDARY, tiny_artifact], capture_output=True, text=True, check=True)
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"before": False, "heavy": []}


def test_cli_refuses_a_missing_artifact_in_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "splade_onnx", "serve", str(tmp_path / "nope"), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert p.stderr.startswith("error: ") and "Traceback" not in p.stderr
