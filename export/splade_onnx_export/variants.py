"""The variant step: the head layout of the fp32 graph, then the fp32 graph turned into the planned variant
(int8, int8-exact or fp16), each variant measured against the torch reference before it replaces the fp32
graph.

Each function rewrites ``model_path`` in place and returns what the manifest records about it.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .fp16 import convert_fp16
from .head_layout import vocab_major_head
from .int8 import int8_agreement, quantize_int8
from .int8_exact import screen_head
from .options import ExportPlan
from .verify import Measurement, ParityCheck

log = logging.getLogger("splade_onnx_export")


def apply_head_layout(
    model_path: str, chunks: Sequence[Tuple[int, int]], pooling: str, vocab_major: bool
) -> Dict[str, Any]:
    """The vocabulary-major head (``head_layout.py``: same sums, a faster max) where ``vocab_major``, else the
    token-major slices ``chunks`` as exported; returns the manifest's ``head_layout``."""
    if vocab_major:
        vm_path = model_path + ".vm"
        layout = vocab_major_head(model_path, vm_path)
        os.replace(vm_path, model_path)
        return layout
    if pooling != "max":
        return {"chunks": 1}
    return {"layout": "token-major", "chunks": len(chunks), "chunk_columns": max(b - a for a, b in chunks)}


def _int8(model_path: str, check: ParityCheck, fp32: Measurement) -> Tuple[Dict[str, Any], Measurement]:
    """Dynamic int8 (``int8.py``): not held to the tolerance, its agreement with the reference is recorded."""
    q_path = model_path + ".int8"
    info = quantize_int8(model_path, q_path)
    got = check.measure(q_path)
    log.info("int8: max |onnx - torch| = %.3g (not held to the tolerance)", got.error)
    info["agreement_with_torch_fp32"] = int8_agreement(got.output, check.reference)
    info["fp32_graph_parity"] = fp32.error
    os.replace(q_path, model_path)
    return info, got


def _int8_exact(model_path: str, check: ParityCheck, fp32: Measurement) -> Tuple[Dict[str, Any], Measurement]:
    """The int8 screen with exact fp32 recomputation (``int8_exact.py``): held to the fp32 tolerance."""
    s_path = model_path + ".screen"
    info = screen_head(model_path, s_path)
    got = check.measure(s_path)
    os.replace(s_path, model_path)
    info["fp32_graph_parity"] = fp32.error
    info["max_abs_diff_vs_fp32_graph"] = float(np.max(np.abs(got.output - fp32.output)))
    info["support_equal_to_fp32_graph"] = bool(np.array_equal(got.output > 0, fp32.output > 0))
    check.require(got, "int8-exact graph")
    return info, got


def _fp16(
    model_path: str, check: ParityCheck, fp32: Measurement, tolerance: float
) -> Tuple[Dict[str, Any], Measurement]:
    """float16 weights and compute (``fp16.py``): held to the looser ``tolerance``."""
    h_path = model_path + ".fp16"
    info = convert_fp16(model_path, h_path)
    got = check.measure(h_path)
    info.update(
        {
            "fp32_graph_parity": fp32.error,
            "max_abs_error_vs_torch_fp32": got.error,
            "tolerance": tolerance,
            "support_mismatches": int(np.sum((got.output > 0) != (check.reference > 0))),
            "support_size": int(np.sum(check.reference > 0)),
        }
    )
    check.require(got, "fp16 graph", limit=tolerance)
    os.replace(h_path, model_path)
    return info, got


def apply_variant(
    plan: ExportPlan, model_path: str, check: ParityCheck, fp32: Measurement
) -> Tuple[Optional[Dict[str, Any]], Measurement]:
    """Turn the verified fp32 graph at ``model_path`` into ``plan.variant``; returns the manifest's
    ``quantization`` record (None for fp32) and the final graph's measurement."""
    if plan.variant == "int8":
        return _int8(model_path, check, fp32)
    if plan.variant == "int8-exact":
        return _int8_exact(model_path, check, fp32)
    if plan.variant == "fp16":
        return _fp16(model_path, check, fp32, plan.fp16_tolerance)
    return None, fp32


VARIANTS: List[str] = ["fp32", "fp16", "int8", "int8-exact"]

__all__ = ["VARIANTS", "apply_head_layout", "apply_variant"]
