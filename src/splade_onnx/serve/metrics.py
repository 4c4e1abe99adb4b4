"""Prometheus metrics of the service (one registry per app, so tests and several apps never collide)."""

from __future__ import annotations

from typing import Any, Tuple

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    """``splade_onnx_*`` counters, gauges and histograms; :meth:`render` gives the Prometheus text format."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("splade_onnx_requests", "HTTP requests answered", ["endpoint", "status"], registry=r)
        self.errors = Counter(
            "splade_onnx_request_errors", "HTTP requests answered with an error", ["endpoint", "error_type"], registry=r
        )
        self.latency = Histogram(
            "splade_onnx_request_duration_seconds",
            "Request latency, arrival to answer",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts = Counter("splade_onnx_texts", "Texts encoded", ["role"], registry=r)
        self.batch_texts = Histogram(
            "splade_onnx_batch_size", "Texts per merged model call", ["role"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "splade_onnx_batch_requests",
            "Requests merged into one model call",
            ["role"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "splade_onnx_batch_tokens",
            "Estimated tokens per merged model call",
            ["role"],
            buckets=(16, 64, 256, 1024, 4096, 16384, 65536),
            registry=r,
        )
        self.queue_wait = Histogram(
            "splade_onnx_queue_wait_seconds",
            "Longest wait of a batch's texts before it ran",
            ["role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "splade_onnx_inference_duration_seconds",
            "Model call duration",
            ["role"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("splade_onnx_queue_depth", "Texts waiting for the model", registry=r)
        self.in_flight = Gauge("splade_onnx_requests_in_flight", "Requests being handled", registry=r)

    def observe_batch(self, role: str, n_texts: int, n_requests: int, tokens: int, wait_s: float, run_s: float) -> None:
        self.texts.labels(role).inc(n_texts)
        self.batch_texts.labels(role).observe(n_texts)
        self.batch_requests.labels(role).observe(n_requests)
        self.batch_tokens.labels(role).observe(tokens)
        self.queue_wait.labels(role).observe(wait_s)
        self.inference.labels(role).observe(run_s)

    def render(self) -> Tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def request_done(self, endpoint: str, status: int, seconds: float, error_type: Any = None) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if error_type is not None:
            self.errors.labels(endpoint, str(error_type)).inc()
