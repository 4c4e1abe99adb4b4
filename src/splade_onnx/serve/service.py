"""The request logic of the service, free of any web framework: parse and check a JSON body, encode, answer.

The ASGI app (:mod:`splade_onnx.serve.app`) runs the encoding through the dynamic batcher; the Lambda handler
(:mod:`splade_onnx.serve.lambda_handler`) calls it directly. Both give the same bodies and status codes.

Errors follow text-embeddings-inference (TEI): a body ``{"error": "...", "error_type": "..."}`` where the type is
``validation`` (413: too many texts, a body or text too long), ``tokenizer`` (422: a text the model cannot encode),
``overloaded`` (503 here, with ``Retry-After``), ``backend`` (5xx) or ``unhealthy``; malformed JSON and wrong
types are 422 ``validation`` bodies that say which field is wrong and why.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from splade_onnx.errors import TextTypeError, TextValueError
from splade_onnx.serve.settings import ServeSettings
from splade_onnx.vectors import SparseVector

ROLES = ("query", "document")
FORMATS = ("opensearch", "elasticsearch", "qdrant")


class ApiError(Exception):
    """An HTTP error answer: ``status`` and TEI's body ``{"error": message, "error_type": error_type}``."""

    def __init__(
        self, status: int, message: str, error_type: str = "validation", headers: Optional[Dict[str, str]] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.headers = dict(headers or {})

    def body(self) -> Dict[str, str]:
        return {"error": self.message, "error_type": self.error_type}


def bad_request(message: str) -> ApiError:
    """422: the body is not what the endpoint takes."""
    return ApiError(422, message, "validation")


@dataclass
class Job:
    """One parsed request: its texts (or query vectors), the role they are encoded with, and its options."""

    endpoint: str
    role: str
    texts: List[str] = field(default_factory=list)
    truncate: bool = True
    options: Dict[str, Any] = field(default_factory=dict)
    vectors: Optional[List[SparseVector]] = None


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


class Service:
    """Request parsing, checking, encoding and rendering for one Expander (and optionally one SparseIndex)."""

    def __init__(self, expander: Any, index: Any = None, settings: Optional[ServeSettings] = None) -> None:
        self.expander = expander
        self.index = index
        self.settings = settings or ServeSettings()
        ml = dict(expander.manifest.max_length)
        self.max_length = {"query": int(ml.get("query", 64)), "document": int(ml.get("document", 256))}
        self._counter: Any = None

    # ------------------------------------------------------------------------------------------------ parsing
    def read_json(self, raw: bytes) -> Dict[str, Any]:
        """The body as a JSON object (413 past ``max_body_bytes``, 422 when it is not a JSON object)."""
        if len(raw) > self.settings.max_body_bytes:
            raise ApiError(
                413,
                f"request body of {len(raw)} bytes > maximum allowed {self.settings.max_body_bytes} bytes",
                "validation",
            )
        if not raw.strip():
            raise bad_request('request body is empty: send a JSON object, e.g. {"inputs": "some text"}')
        try:
            import orjson

            body = orjson.loads(raw)
        except ImportError:  # pragma: no cover - orjson is part of the [serve] extra
            body = None
        except ValueError as e:
            raise bad_request(f"request body is not valid JSON: {e}") from None
        if body is None:
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise bad_request(f"request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise bad_request(f"request body must be a JSON object, got {_type_name(body)}")
        return body

    def _texts(self, body: Dict[str, Any], name: str = "inputs") -> List[str]:
        if name not in body:
            raise bad_request(f"missing field `{name}`: a string or an array of strings")
        v = body[name]
        if isinstance(v, str):
            texts = [v]
        elif isinstance(v, list):
            texts = v
            if not texts:
                raise bad_request(f"`{name}` cannot be empty")
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise bad_request(f"`{name}[{i}]` must be a string, got {_type_name(t)}")
        else:
            raise bad_request(f"`{name}` must be a string or an array of strings, got {_type_name(v)}")
        n_max = self.settings.max_request_texts
        if len(texts) > n_max:
            raise ApiError(413, f"batch size {len(texts)} > maximum allowed batch size {n_max}", "validation")
        for i, t in enumerate(texts):
            if not t.strip():
                raise ApiError(422, f"`{name}[{i}]` is empty or whitespace-only: nothing to encode", "tokenizer")
        return texts

    @staticmethod
    def _bool(body: Dict[str, Any], name: str, default: bool) -> bool:
        v = body.get(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise bad_request(f"`{name}` must be a boolean, got {_type_name(v)}")
        return v

    @staticmethod
    def _int(body: Dict[str, Any], name: str, default: Optional[int], lo: int, hi: int) -> Optional[int]:
        v = body.get(name)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad_request(f"`{name}` must be an integer, got {_type_name(v)}")
        if not lo <= v <= hi:
            raise bad_request(f"`{name}` must be between {lo} and {hi}, got {v}")
        return v

    def _role(self, body: Dict[str, Any], name: str = "role", default: str = "document") -> str:
        v = body.get(name)
        if v is None:
            return default
        if v not in ROLES:
            raise bad_request(f'`{name}` must be "query" or "document", got {json.dumps(v)}')
        return str(v)

    def parse_embed_sparse(self, body: Dict[str, Any]) -> Job:
        """TEI's ``POST /embed_sparse``: ``inputs``, ``truncate``; ``prompt_name`` "query" encodes as queries."""
        texts = self._texts(body)
        truncate = self._bool(body, "truncate", self.settings.auto_truncate)
        role = self._role(body, "prompt_name", "document")
        return Job("embed_sparse", role, texts, truncate)

    def parse_expand(self, body: Dict[str, Any]) -> Job:
        """``POST /expand``: ``inputs``, ``role``, ``prune``, ``top_k``, ``tokens``, ``format``, ``field``."""
        from splade_onnx.encode import pruning

        texts = self._texts(body)
        role = self._role(body)
        truncate = self._bool(body, "truncate", self.settings.auto_truncate)
        try:
            prune = pruning.parse_spec(body.get("prune"))
        except (TypeError, ValueError) as e:
            raise bad_request(f"`prune`: {e}") from None
        top_k = self._int(body, "top_k", None, 1, self.expander.vocab_size)
        tokens = self._bool(body, "tokens", top_k is not None)
        fmt = body.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise bad_request(f"`format` must be one of {', '.join(FORMATS)} (or null), got {json.dumps(fmt)}")
        fld = body.get("field")
        if fld is not None and (not isinstance(fld, str) or not fld):
            raise bad_request(f"`field` must be a non-empty string, got {_type_name(fld)}")
        return Job(
            "expand",
            role,
            texts,
            truncate,
            {"prune": prune, "top_k": top_k, "tokens": tokens, "format": fmt, "field": fld},
        )

    def parse_search(self, body: Dict[str, Any]) -> Job:
        """``POST /search``: ``queries`` (texts) or ``vectors``, ``k``, ``explain``, ``texts``."""
        if self.index is None:
            raise ApiError(404, "no index is loaded: start the service with --index INDEX_DIR", "validation")
        k = self._int(body, "k", 10, 1, self.settings.max_search_k)
        ex = body.get("explain", False)
        if isinstance(ex, bool):
            explain = 10 if ex else 0
        elif isinstance(ex, int):
            if not 0 <= ex <= 1000:
                raise bad_request(f"`explain` must be a boolean or a token count 0..1000, got {ex}")
            explain = ex
        else:
            raise bad_request(f"`explain` must be a boolean or a token count, got {_type_name(ex)}")
        with_texts = self._bool(body, "texts", True)
        opts = {"k": k, "explain": explain, "texts": with_texts}
        has_q, has_v = body.get("queries") is not None, body.get("vectors") is not None
        if has_q == has_v:
            raise bad_request(
                'give exactly one of `queries` (texts) or `vectors` ([{"indices": [...], "values": [...]}, ...])'
            )
        if has_q:
            return Job("search", "query", self._texts(body, "queries"), True, opts)
        raw = body["vectors"]
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise bad_request('`vectors` must be a non-empty array of {"indices": [...], "values": [...]}')
        if len(raw) > self.settings.max_request_texts:
            raise ApiError(
                413,
                f"batch size {len(raw)} > maximum allowed batch size {self.settings.max_request_texts}",
                "validation",
            )
        vecs = [self._vector(v, i) for i, v in enumerate(raw)]
        return Job("search", "query", [], True, opts, vectors=vecs)

    def _vector(self, v: Any, i: int) -> SparseVector:
        where = f"`vectors[{i}]`"
        if isinstance(v, list):  # TEI's own output shape: [{"index": i, "value": w}, ...]
            try:
                idx = [e["index"] for e in v]
                val = [e["value"] for e in v]
            except (TypeError, KeyError):
                raise bad_request(f'{where} must be {{"indices", "values"}} or [{{"index", "value"}}, ...]') from None
        elif isinstance(v, dict) and "indices" in v and "values" in v:
            idx, val = v["indices"], v["values"]
        else:
            raise bad_request(f'{where} must be {{"indices": [...], "values": [...]}}, got {_type_name(v)}')
        if not isinstance(idx, list) or not isinstance(val, list) or len(idx) != len(val):
            raise bad_request(f"{where}: indices and values must be arrays of the same length")
        if any(isinstance(x, bool) or not isinstance(x, int) for x in idx):
            raise bad_request(f"{where}: indices must be integers")
        if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in val):
            raise bad_request(f"{where}: values must be finite numbers")
        n = self.expander.vocab_size
        if any(not 0 <= x < n for x in idx):
            raise bad_request(f"{where}: indices must be token ids in [0, {n})")
        if len(set(idx)) != len(idx):
            raise bad_request(f"{where}: indices must not repeat")
        order = np.argsort(np.asarray(idx, dtype=np.int64), kind="stable")
        return SparseVector(np.asarray(idx, dtype=np.int32)[order], np.asarray(val, dtype=np.float32)[order])

    # ------------------------------------------------------------------------------------------------ checking
    def estimate_tokens(self, job: Job) -> int:
        """Tokens of the job's texts, estimated from their length (capped at the role's max length): the batch
        budget's unit. Cheap on purpose; the Expander tokenizes once, in the batch."""
        cap = self.max_length[job.role]
        return sum(min(cap, len(t) // 4 + 2) for t in job.texts)

    def _token_counter(self) -> Any:
        if self._counter is None:
            from tokenizers import Tokenizer

            files = self.expander.manifest.files or {}
            tok = Tokenizer.from_file(os.path.join(self.expander.path, files.get("tokenizer", "tokenizer.json")))
            tok.no_padding()
            tok.no_truncation()
            self._counter = tok
        return self._counter

    def check_lengths(self, job: Job) -> None:
        """With ``truncate: false`` a text longer than the role's max length is refused (413), as TEI does."""
        if job.truncate:
            return
        cap = self.max_length[job.role]
        for i, t in enumerate(job.texts):
            if len(t) + 2 <= cap:  # a token spans at least one character: cannot be over the limit
                continue
            n = len(self._token_counter().encode(t).ids)
            if n > cap:
                raise ApiError(
                    413,
                    f"Input validation error: `inputs[{i}]` must have less than {cap} tokens. "
                    f'Given: {n} (send "truncate": true to cut it)',
                    "validation",
                )

    # ------------------------------------------------------------------------------------------------ encoding
    def encode(self, role: str, texts: List[str]) -> List[Any]:
        """Encode texts of one role: one vector per text, or the exception of a text the model refuses (the other
        texts keep their vectors). Runs in the batcher's worker thread."""
        enc = self.expander.encode_queries if role == "query" else self.expander.encode_documents
        try:
            return list(enc(texts))
        except (TextTypeError, TextValueError) as e:
            out: List[Any] = list(e.results) if len(e.results) == len(texts) else [None] * len(texts)
            for p in e.positions:
                out[p] = self._refusal(enc, texts[p])
            for p, v in enumerate(out):
                if v is None:  # not in .results: encode alone
                    try:
                        out[p] = enc([texts[p]])[0]
                    except (TextTypeError, TextValueError) as e1:
                        out[p] = e1
            return out

    @staticmethod
    def _refusal(enc: Any, text: str) -> Exception:
        try:
            enc([text])
        except (TextTypeError, TextValueError) as e:
            return e
        return TextValueError("the model refused this text")  # pragma: no cover

    @staticmethod
    def refused(job: Job, results: Sequence[Any]) -> None:
        """422 naming the first text of the job the model refused (the other requests are not affected)."""
        for i, r in enumerate(results):
            if isinstance(r, BaseException):
                why = str(r).split(". The other texts", 1)[0]
                if why.startswith("position 0: "):
                    why = why[len("position 0: ") :]
                name = "queries" if job.endpoint == "search" else "inputs"
                raise ApiError(422, f"`{name}[{i}]` cannot be encoded: {why}", "tokenizer")

    # ------------------------------------------------------------------------------------------------ rendering
    @staticmethod
    def render_embed_sparse(vectors: Sequence[SparseVector]) -> List[List[Dict[str, Any]]]:
        """TEI's ``EmbedSparseResponse``: one ``[{"index": i, "value": w}, ...]`` per input (ascending index)."""
        return [
            [{"index": i, "value": w} for i, w in zip(v.indices.tolist(), v.values.tolist(), strict=True)]
            for v in vectors
        ]

    def render_expand(self, job: Job, vectors: Sequence[SparseVector]) -> Dict[str, Any]:
        from splade_onnx.encode import pruning
        from splade_onnx.io import payloads

        opts = job.options
        if opts.get("prune") is not None:
            vectors = pruning.prune_many(list(vectors), *opts["prune"])
        out = []
        fmt, fld = opts.get("format"), opts.get("field")
        for v in vectors:
            d: Dict[str, Any] = {"indices": v.indices.tolist(), "values": v.values.tolist(), "nnz": v.nnz}
            if opts.get("tokens"):
                d["tokens"] = [[t, w] for t, w in self.expander.decode(v, opts.get("top_k"))]
            if fmt == "opensearch":
                kw = {"field": fld} if fld else {}
                d["payload"] = (
                    payloads.opensearch_query(v, self.expander, **kw)
                    if job.role == "query"
                    else payloads.opensearch_document(v, self.expander, **kw)
                )
            elif fmt == "elasticsearch":
                kw = {"field": fld} if fld else {}
                d["payload"] = (
                    payloads.elasticsearch_query(v, self.expander, **kw)
                    if job.role == "query"
                    else payloads.elasticsearch_document(v, self.expander, **kw)
                )
            elif fmt == "qdrant":
                d["payload"] = v.to_dict()  # the wire form of qdrant's SparseVector (payloads.qdrant_vector)
            out.append(d)
        return {"role": job.role, "vectors": out}

    def search(self, job: Job, vectors: Sequence[SparseVector]) -> Dict[str, Any]:
        """Top-``k`` hits per query: ids, scores, stored texts, and under ``explain`` the shared tokens."""
        idx = self.index
        k, explain, with_texts = job.options["k"], job.options["explain"], job.options["texts"]
        hits_all = idx.search(list(vectors), k=k)
        vocab = idx.vocab or self.expander.vocab
        results = []
        for qv, hits in zip(vectors, hits_all, strict=False):
            rows = []
            for did, score in hits:
                row: Dict[str, Any] = {"id": did, "score": score}
                if with_texts:
                    row["text"] = idx.text(did)
                if explain:
                    row["explain"] = [
                        {
                            "token": c.token,
                            "token_id": c.token_id,
                            "query_weight": c.query_weight,
                            "doc_weight": c.doc_weight,
                            "product": c.product,
                        }
                        for c in idx.explain(qv, did, explain, vocab=vocab)
                    ]
                rows.append(row)
            results.append(rows)
        out: Dict[str, Any] = {"results": results}
        if job.texts:
            out["query_vectors"] = [{"indices": v.indices.tolist(), "values": v.values.tolist()} for v in vectors]
        return out

    # ------------------------------------------------------------------------------------------------ info
    def info(self, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """``GET /info``: TEI's keys (model_id, limits) plus the manifest, versions and the index."""
        import dataclasses
        import platform

        import onnxruntime
        import tokenizers

        from splade_onnx import __version__

        m = self.expander.manifest
        s = self.settings
        info: Dict[str, Any] = {
            "model_id": m.source,
            "model_sha": m.model_sha256,
            "model_dtype": "float32" if not m.quantization else str(m.quantization.get("mode", "int8")),
            "model_type": {"splade": {"pooling": m.pooling, "activation": m.activation}},
            "max_input_length": self.max_length["document"],
            "max_batch_tokens": s.max_batch_tokens,
            "max_client_batch_size": s.max_request_texts,
            "max_concurrent_requests": s.max_queue,
            "auto_truncate": s.auto_truncate,
            "version": __version__,
            "router": "splade-onnx",
            "max_length": dict(m.max_length),
            "vocab_size": m.vocab_size,
            "providers": list(getattr(self.expander, "providers", [])),
            "limits": s.to_dict(),
            "versions": {
                "splade_onnx": __version__,
                "onnxruntime": onnxruntime.__version__,
                "tokenizers": tokenizers.__version__,
                "python": platform.python_version(),
            },
            "manifest": dataclasses.asdict(m),
            "index": None,
        }
        if self.index is not None:
            info["index"] = {
                "documents": len(self.index),
                "postings": self.index.nnz,
                "dtype": self.index.dtype,
                "texts": self.index.texts is not None,
            }
        if extra:
            info["versions"].update(extra)
        return info

    # ------------------------------------------------------------------------------------------------ direct
    def handle(self, method: str, path: str, raw: bytes) -> Tuple[int, Any, Dict[str, str]]:
        """One request answered in the calling thread, without batching (the Lambda handler's path):
        ``(status, JSON-able body, headers)``."""
        try:
            if method == "GET" and path == "/health":
                return 200, {"status": "ok"}, {}
            if method == "GET" and path == "/info":
                return 200, self.info(), {}
            routes = {
                "/embed_sparse": self.parse_embed_sparse,
                "/expand": self.parse_expand,
                "/search": self.parse_search,
            }
            if path not in routes:
                raise ApiError(404, f"no endpoint {method} {path}", "validation")
            if method != "POST":
                raise ApiError(405, f"{path} takes POST", "validation")
            job = routes[path](self.read_json(raw))
            self.check_lengths(job)
            vectors = job.vectors
            if vectors is None:
                results = self.encode(job.role, job.texts)
                self.refused(job, results)
                vectors = results
            if job.endpoint == "embed_sparse":
                return 200, self.render_embed_sparse(vectors), {}
            if job.endpoint == "expand":
                return 200, self.render_expand(job, vectors), {}
            return 200, self.search(job, vectors), {}
        except ApiError as e:
            return e.status, e.body(), e.headers
