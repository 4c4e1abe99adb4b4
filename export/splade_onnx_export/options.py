"""The export's options, checked before anything is loaded: which variant of the graph to write and with which
head layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from splade_onnx.errors import ExportOptionError

from .fp16 import FP16_TOLERANCE

QUANTIZE_CHOICES = ("int8", "int8-exact")
PRECISION_CHOICES = ("fp32", "fp16")
HEAD_LAYOUT_CHOICES = ("token-major", "vocab-major")


@dataclass(frozen=True)
class ExportPlan:
    """What the pipeline writes: ``variant`` (``fp32``, ``fp16``, ``int8`` or ``int8-exact``), whether the
    graph is optimised, whether the max-pooled head takes the vocabulary-major layout, and the fp16
    tolerance."""

    variant: str
    optimize: bool
    vocab_major: bool
    fp16_tolerance: float


def plan_export(
    *,
    pooling: str,
    optimize: bool = True,
    quantize: Optional[str] = None,
    precision: str = "fp32",
    head_layout: Optional[str] = None,
    fp16_tolerance: Optional[float] = None,
) -> ExportPlan:
    """Check the options against each other and the pooling; raises :class:`ExportOptionError`.

    ``head_layout`` (max pooling): ``None`` picks ``"vocab-major"`` for fp32/fp16 (faster, see head_layout.py)
    and ``"token-major"`` for int8 / int8-exact, which quantise token-major slices; ``"token-major"`` can be
    forced."""
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ExportOptionError(f"unknown quantize {quantize!r} (known: {', '.join(QUANTIZE_CHOICES)})")
    if head_layout not in (None, *HEAD_LAYOUT_CHOICES):
        known = ", ".join(HEAD_LAYOUT_CHOICES)
        raise ExportOptionError(f"unknown head_layout {head_layout!r} (known: {known})")
    if head_layout == "vocab-major" and quantize:
        raise ExportOptionError("quantize works on the token-major head: leave head_layout unset")
    if head_layout == "vocab-major" and pooling != "max":
        msg = "head_layout='vocab-major' needs max pooling (the head slices are max-pooled)"
        raise ExportOptionError(msg)
    if precision not in PRECISION_CHOICES:
        raise ExportOptionError(f"unknown precision {precision!r} (known: {', '.join(PRECISION_CHOICES)})")
    if precision == "fp16" and quantize:
        raise ExportOptionError("precision='fp16' and quantize are exclusive")
    if quantize == "int8-exact" and pooling != "max":
        msg = "quantize='int8-exact' needs max pooling (the screen bounds a max over tokens)"
        raise ExportOptionError(msg)
    return ExportPlan(
        variant=quantize or precision,
        optimize=bool(optimize),
        vocab_major=pooling == "max" and quantize is None and head_layout != "token-major",
        fp16_tolerance=FP16_TOLERANCE if fp16_tolerance is None else float(fp16_tolerance),
    )


__all__ = [
    "ExportOptionError",
    "ExportPlan",
    "plan_export",
    "QUANTIZE_CHOICES",
    "PRECISION_CHOICES",
    "HEAD_LAYOUT_CHOICES",
]
