"""The verify step: the torch reference of the parity texts, and the check of each written graph against
it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from splade_onnx.build.formula import PARITY_TEXTS, parity_batch_size, parity_length, tolerance_scale
from splade_onnx.errors import ExportParityError

from .checkpoint import Checkpoint
from .graph import run_onnx
from .reference import splade_reference

log = logging.getLogger("splade_onnx_export")

REFERENCE = "transformers AutoModelForMaskedLM, log1p(relu(logits)) masked max over tokens"


class Measurement(NamedTuple):
    """One graph's output on the parity texts and how far it is from the reference."""

    output: np.ndarray  # [texts, vocab]
    error: float  # max |output - reference|
    support_equal: bool  # the same non-zero entries as the reference


@dataclass
class ParityCheck:
    """The parity texts tokenized at ``length`` (``feeds``), their torch ``reference`` weights, and the
    tolerance (``tolerance * scale``; sum pooling: ``scale`` is the largest reference weight, else 1)."""

    texts: List[str]
    length: int
    feeds: Dict[str, np.ndarray]
    reference: np.ndarray
    tolerance: float
    scale: float

    def measure(self, model_path: str) -> Measurement:
        """Run ``model_path`` on the parity feeds and compare with the reference."""
        got = run_onnx(model_path, self.feeds)
        return Measurement(
            got,
            float(np.max(np.abs(got - self.reference))),
            bool(np.array_equal(got > 0, self.reference > 0)),
        )

    def require(self, m: Measurement, what: str, limit: Optional[float] = None) -> Measurement:
        """``m`` if its error is within ``limit`` (default: the tolerance), else
        :class:`ExportParityError`."""
        limit = self.tolerance * self.scale if limit is None else limit
        if not (m.error <= limit):
            msg = f"{what} differs from the torch reference by {m.error:.3g} (> {limit:g})"
            raise ExportParityError(msg + "; artifact not written")
        log.info(
            "%s: max |onnx - torch| = %.3g over %d texts, support equal: %s",
            what,
            m.error,
            len(self.texts),
            m.support_equal,
        )
        return m

    def record(self, m: Measurement) -> Dict[str, Any]:
        """The manifest's ``parity`` field for the graph measured by ``m``."""
        return {
            "max_abs_error": m.error,
            "tolerance": self.tolerance,
            "tolerance_scale": self.scale,  # sum pooling: relative to the largest weight
            "texts": len(self.texts),
            "max_length": self.length,
            "support_equal": m.support_equal,
            "reference": REFERENCE,
        }


def prepare_parity(
    ckpt: Checkpoint, head: Dict[str, Any], *, tolerance: float, texts: Optional[Sequence[str]] = None
) -> ParityCheck:
    """Compute the torch reference of ``texts`` (default ``formula.PARITY_TEXTS``) at
    ``formula.parity_length`` for the SPLADE head ``head`` (``sources.resolve_head``)."""
    activation, pooling = head["activation"], head["pooling"]
    texts = list(texts or PARITY_TEXTS)
    length = parity_length(head["document_max_length"], ckpt.window)
    ref = splade_reference(
        ckpt.mlm,
        ckpt.tokenizer,
        texts,
        max_length=length,
        activation=activation,
        pooling=pooling,
        zeroed_token_ids=ckpt.zeroed_token_ids,
        batch_size=parity_batch_size(len(texts), length, ckpt.vocab_size),
    )
    scale = tolerance_scale(ref, pooling)
    return ParityCheck(texts, length, ckpt.feeds(texts, length), ref, tolerance, scale)


__all__ = ["REFERENCE", "Measurement", "ParityCheck", "prepare_parity"]
