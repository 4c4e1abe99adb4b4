"""``splade-onnx serve``: an HTTP service (Starlette on uvicorn) with dynamic batching, and a Lambda handler.

Imported only when serving: ``import splade_onnx`` never loads it. Needs the ``[serve]`` extra
(``pip install "splade-onnx[serve]"``); :func:`create_app` raises :class:`~splade_onnx.errors.MissingExtraError`
naming it when Starlette is absent.
"""

from __future__ import annotations

from typing import Any, Optional

from splade_onnx.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def create_app(expander: Any, index: Any = None, settings: Optional[ServeSettings] = None) -> Any:
    """The ASGI application serving ``expander`` (and ``index`` for ``/search``); see :mod:`splade_onnx.serve.app`."""
    from splade_onnx.serve.app import create_app as _create_app

    return _create_app(expander, index=index, settings=settings)
