"""AWS Lambda handler (API Gateway proxy events, REST v1 and HTTP API v2): the service's endpoints without a server.

Set the function's handler to ``splade_onnx.serve.lambda_handler.handler`` and its environment:

``SPLADE_ONNX_MODEL``   the artifact folder (e.g. ``/opt/splade-tiny`` from a layer, or ``/var/task/model``)
``SPLADE_ONNX_INDEX``   optional: a saved SparseIndex folder, served on ``POST /search``
``SPLADE_ONNX_THREADS`` optional: onnxruntime intra-op threads

The Expander (and the index) are loaded on the first invocation of a process and reused by every later one, so only
a cold start pays the load. Bodies, limits and status codes are those of the HTTP service (one invocation is one
request, so there is no batching and no queue). Needs no web framework: only the runtime's own dependencies.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from typing import Any, Dict, Optional

from splade_onnx.serve.service import Service

ROUTES = ("/embed_sparse", "/expand", "/search", "/health", "/info")

_service: Optional[Service] = None
_lock = threading.Lock()


def get_service() -> Service:
    """The process's :class:`Service`, loaded once from ``SPLADE_ONNX_MODEL`` (and ``SPLADE_ONNX_INDEX``)."""
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                import warnings

                from splade_onnx.encode.expander import Expander

                model = os.environ.get("SPLADE_ONNX_MODEL")
                if not model:
                    raise RuntimeError("set SPLADE_ONNX_MODEL to the artifact folder of the function")
                threads = os.environ.get("SPLADE_ONNX_THREADS")
                expander = Expander(model, threads=int(threads) if threads else None)
                index = None
                if os.environ.get("SPLADE_ONNX_INDEX"):
                    from splade_onnx.index import SparseIndex

                    index = SparseIndex.load(os.environ["SPLADE_ONNX_INDEX"], mmap=True)
                warnings.filterwarnings("ignore", message=r".*exceed max_length=", category=UserWarning)
                _service = Service(expander, index)
    return _service


def _route(path: str) -> str:
    """The endpoint of a path that may carry an API Gateway stage or base-path prefix (``/prod/embed_sparse``)."""
    for r in ROUTES:
        if path == r or path.endswith(r):
            return r
    return path


def handler(event: Dict[str, Any], context: Any = None) -> Dict[str, Any]:
    """Answer one API Gateway proxy event with an API Gateway proxy response (JSON body)."""
    ctx_http = (event.get("requestContext") or {}).get("http") or {}
    method = str(event.get("httpMethod") or ctx_http.get("method") or "POST").upper()
    path = _route(str(event.get("rawPath") or event.get("path") or ctx_http.get("path") or "/embed_sparse"))
    raw = event.get("body") or ""
    body = (
        base64.b64decode(raw)
        if event.get("isBase64Encoded")
        else (raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw))
    )
    status, payload, headers = get_service().handle(method, path, body)
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **headers},
        "body": json.dumps(payload, ensure_ascii=False),
        "isBase64Encoded": False,
    }
