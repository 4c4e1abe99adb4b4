"""``splade-onnx serve``: run the HTTP service (registered by :func:`splade_onnx.cli.main.build_parser`)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

# Flag defaults live in splade_onnx.serve.settings.ServeSettings (None here = its default), so `splade-onnx --help`
# does not import the serve package.
_LIMITS = ("max_batch_tokens", "max_wait_ms", "max_queue", "max_request_texts", "max_body_bytes", "timeout_s")


def add_parsers(sub: Any) -> None:
    """Register ``serve``."""
    add_serve(sub)


def add_serve(sub: Any) -> None:
    """Register the ``serve`` subcommand."""
    p = sub.add_parser(
        "serve",
        help="serve the artifact over HTTP (TEI-compatible /embed_sparse, /expand, /search; needs [serve])",
        description="Serve ARTIFACT on an ASGI stack (Starlette on uvicorn) with dynamic batching: POST "
        "/embed_sparse (text-embeddings-inference's contract), /expand, /search (with --index), GET /health, "
        "/info, /metrics. SIGTERM stops accepting, answers the accepted requests, then exits.",
        epilog="example:\n  splade-onnx serve artifacts/splade-tiny --port 8080\n"
        "  curl -s localhost:8080/embed_sparse -H 'content-type: application/json' "
        '-d \'{"inputs": "what is splade?"}\'\n',
    )
    p.add_argument("model", metavar="ARTIFACT", help="artifact folder or hub repo id")
    p.add_argument("--index", default=None, metavar="DIR", help="a saved SparseIndex to serve on /search")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--max-batch-tokens", type=int, default=None, help="token budget of one merged model call (default 16384)"
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=None,
        help="longest hold of a text while a crowd joins its batch (default 2); a lone request is never held",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=None,
        help="texts waiting for the model, at most; then 503 + Retry-After (default 1024)",
    )
    p.add_argument(
        "--max-request-texts", type=int, default=None, help="texts per request, at most; then 413 (default 32)"
    )
    p.add_argument(
        "--max-body-bytes", type=int, default=None, help="request body size, at most; then 413 (default 2000000)"
    )
    p.add_argument("--timeout-s", type=float, default=None, help="answer 504 after this many seconds (default 30)")
    p.add_argument(
        "--no-auto-truncate",
        dest="auto_truncate",
        action="store_false",
        help='TEI\'s truncate defaults to false: over-long texts get 413 unless a request sends "truncate": true',
    )
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: its choice)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as e:
        from splade_onnx.errors import MissingExtraError

        raise MissingExtraError("serve", "splade-onnx serve", e) from e
    from splade_onnx.encode.expander import Expander
    from splade_onnx.serve import ServeSettings, create_app

    given = {k: getattr(args, k) for k in _LIMITS if getattr(args, k) is not None}
    settings = ServeSettings(auto_truncate=args.auto_truncate, **given)
    expander = Expander(args.model, threads=args.threads)
    index = None
    if args.index:
        from splade_onnx.errors import ArtifactError
        from splade_onnx.index import SparseIndex, model_info

        index = SparseIndex.load(args.index, mmap=True)
        want = index.model.get("manifest_sha256")
        got = model_info(expander)["manifest_sha256"]
        if want and got and want != got:
            raise ArtifactError(
                f"this artifact is not the one the index was built with (manifest sha256 "
                f"{got[:12]}... vs {want[:12]}... in the index header)",
                args.model,
            )
    app = create_app(expander, index=index, settings=settings)
    if args.verbose:
        logging.getLogger("splade_onnx").setLevel(logging.INFO)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=int(settings.timeout_s) + 5,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    print(
        f"splade-onnx serve: {args.model} on http://{args.host}:{args.port}"
        + (f" with index {args.index} ({len(index)} documents)" if index is not None else ""),
        file=sys.stderr,
        flush=True,
    )
    server.run()
    return 0
