"""Limits and batching knobs of the HTTP service (``splade-onnx serve`` flags map one to one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict


@dataclass(frozen=True)
class ServeSettings:
    """Service limits.

    Attributes:
        max_batch_tokens: token budget of one merged onnxruntime call (estimated tokens of its texts); a request
            whose texts alone exceed it still runs, alone.
        max_wait_ms: the longest a waiting text is held back to let a crowd of concurrent requests join its batch.
            A lone request is never held back (it runs at once when the model is idle).
        max_queue: texts waiting for the model, at most; past it requests get 503 with ``Retry-After``.
        max_request_texts: texts per request, at most (TEI's ``max_client_batch_size``); past it 413.
        max_body_bytes: request body size, at most (TEI's ``payload_limit``); past it 413.
        timeout_s: a request still unanswered after this many seconds gets 504 (its texts leave the queue).
        retry_after_s: the ``Retry-After`` header of a 503.
        auto_truncate: the default of TEI's ``truncate`` field; with ``truncate: false`` a text over the role's
            token length is refused with 413, as TEI does.
        max_search_k: largest ``k`` of ``/search``.
    """

    max_batch_tokens: int = 16384
    max_wait_ms: float = 2.0
    max_queue: int = 1024
    max_request_texts: int = 32
    max_body_bytes: int = 2_000_000
    timeout_s: float = 30.0
    retry_after_s: int = 1
    auto_truncate: bool = True
    max_search_k: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_queue", "max_request_texts", "max_body_bytes", "max_search_k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.max_wait_ms >= 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)
