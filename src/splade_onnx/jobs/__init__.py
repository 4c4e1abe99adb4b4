"""Corpus jobs: :func:`splade_onnx.jobs.encode.run_encode_job` (``splade-onnx encode``)."""

from __future__ import annotations

from splade_onnx.jobs.encode import EncodeJobResult, run_encode_job

__all__ = ["run_encode_job", "EncodeJobResult"]
