"""The ASGI app: Starlette routes over :class:`~splade_onnx.serve.service.Service` and the dynamic batcher.

Endpoints: ``POST /embed_sparse`` (TEI's contract), ``POST /expand``, ``POST /search`` (with an index),
``GET /health``, ``GET /info``, ``GET /metrics`` (Prometheus text). See docs/serving.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Optional

from splade_onnx.errors import MissingExtraError
from splade_onnx.serve.batcher import DynamicBatcher, OverloadedError, ShuttingDownError
from splade_onnx.serve.service import ApiError, Job, Service
from splade_onnx.serve.settings import ServeSettings

log = logging.getLogger("splade_onnx.serve")


def _dumps(obj: Any) -> bytes:
    try:
        import orjson

        return orjson.dumps(obj)
    except ImportError:  # pragma: no cover - orjson is part of the [serve] extra
        import json

        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def create_app(expander: Any, index: Any = None, settings: Optional[ServeSettings] = None) -> Any:
    """A Starlette app serving ``expander`` (an :class:`~splade_onnx.Expander`) and, when given, ``index``
    (a :class:`~splade_onnx.SparseIndex`) on ``/search``. Run it with uvicorn (``splade-onnx serve`` does)."""
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route
    except ImportError as e:
        raise MissingExtraError("serve", "the HTTP service", e) from e
    from splade_onnx.serve.metrics import Metrics

    settings = settings or ServeSettings()
    service = Service(expander, index, settings)
    metrics = Metrics()
    batcher = DynamicBatcher(
        service.encode,
        max_batch_tokens=settings.max_batch_tokens,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        observe=metrics.observe_batch,
    )
    # truncation is the contract of `truncate: true` (TEI's default here), not something to warn about per batch
    warnings.filterwarnings("ignore", message=r".*exceed max_length=", category=UserWarning)

    def json_response(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> Response:
        return Response(_dumps(body), status_code=status, headers=headers, media_type="application/json")

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body of {declared} bytes > maximum allowed {limit} bytes", "validation")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body > maximum allowed {limit} bytes", "validation")
            chunks.append(chunk)
        return b"".join(chunks)

    async def encode(job: Job) -> Any:
        if job.vectors is not None:
            return job.vectors
        if not job.truncate and any(len(t) + 2 > service.max_length[job.role] for t in job.texts):
            await asyncio.get_running_loop().run_in_executor(None, service.check_lengths, job)
        results = await batcher.submit(job.role, job.texts, service.estimate_tokens(job), settings.timeout_s)
        service.refused(job, results)
        return results

    def endpoint(name: str, fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            t0 = time.perf_counter()
            batcher.enter()
            error_type: Optional[str] = None
            try:
                resp = await fn(request)
            except ApiError as e:
                error_type = e.error_type
                resp = json_response(e.status, e.body(), e.headers)
            except OverloadedError as e:
                error_type = "overloaded"
                resp = json_response(
                    503, {"error": str(e), "error_type": "overloaded"}, {"Retry-After": str(settings.retry_after_s)}
                )
            except ShuttingDownError as e:
                error_type = "unhealthy"
                resp = json_response(
                    503, {"error": str(e), "error_type": "unhealthy"}, {"Retry-After": str(settings.retry_after_s)}
                )
            except asyncio.TimeoutError:
                error_type = "timeout"
                resp = json_response(
                    504,
                    {
                        "error": f"no answer within {settings.timeout_s:g} s (the model is busy); retry later",
                        "error_type": "backend",
                    },
                    {"Retry-After": str(settings.retry_after_s)},
                )
            except Exception as e:  # noqa: BLE001 - a 500 with the reason, the service stays up
                log.exception("%s failed", name)
                error_type = "backend"
                resp = json_response(500, {"error": f"{type(e).__name__}: {e}", "error_type": "backend"})
            finally:
                batcher.leave()
            metrics.request_done(name, resp.status_code, time.perf_counter() - t0, error_type)
            return resp

        return handler

    async def embed_sparse(request: Request) -> Response:
        job = service.parse_embed_sparse(service.read_json(await read_body(request)))
        return json_response(200, service.render_embed_sparse(await encode(job)))

    async def expand(request: Request) -> Response:
        job = service.parse_expand(service.read_json(await read_body(request)))
        return json_response(200, service.render_expand(job, await encode(job)))

    async def search(request: Request) -> Response:
        job = service.parse_search(service.read_json(await read_body(request)))
        vectors = await encode(job)
        body = await asyncio.get_running_loop().run_in_executor(None, service.search, job, vectors)
        return json_response(200, body)

    async def health(request: Request) -> Response:
        if batcher.closing:
            return json_response(503, {"error": "unhealthy: shutting down", "error_type": "unhealthy"})
        return json_response(200, {"status": "ok"})

    async def info(request: Request) -> Response:
        import starlette
        import uvicorn

        return json_response(200, service.info({"starlette": starlette.__version__, "uvicorn": uvicorn.__version__}))

    async def metrics_endpoint(request: Request) -> Response:
        metrics.queue_depth.set(batcher.queued_texts)
        metrics.in_flight.set(batcher.active)
        data, ctype = metrics.render()
        return Response(data, media_type=ctype)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        batcher.start()
        log.info(
            "serving %s (batcher: %d tokens, %g ms, queue %d)",
            expander.manifest.source,
            settings.max_batch_tokens,
            settings.max_wait_ms,
            settings.max_queue,
        )
        try:
            yield
        finally:
            await batcher.close()  # every accepted text is answered before the process exits

    routes = [
        Route("/embed_sparse", endpoint("embed_sparse", embed_sparse), methods=["POST"]),
        Route("/expand", endpoint("expand", expand), methods=["POST"]),
        Route("/search", endpoint("search", search), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return json_response(
            404, {"error": f"no endpoint {request.method} {request.url.path}", "error_type": "validation"}
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return json_response(
            405, {"error": f"{request.url.path} does not take {request.method}", "error_type": "validation"}
        )

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed})
    app.state.service = service
    app.state.batcher = batcher
    app.state.metrics = metrics
    return app
