"""The load step: a Hugging Face masked-LM checkpoint (config, fast tokenizer, model) and what the export
needs to know about it (its inputs, window, special tokens). Every failure a user can cause raises
``ExportError`` saying what to pass instead."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from splade_onnx.build.formula import SPECIAL_TOKEN_NAMES, model_window, special_tokens
from splade_onnx.errors import ExportError

from .wrapper import uses_token_type_ids


def _reason(e: BaseException, limit: int = 240) -> str:
    """The first line of an exception's message, shortened: enough for a one-line error."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    first = lines[0] if lines else type(e).__name__
    return first if len(first) <= limit else first[: limit - 3] + "..."


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``source`` (folder or hub id), ``config``, ``tokenizer`` (fast), ``mlm`` (eval
    mode), the graph ``inputs``, the model ``window`` and the token ids the export zeroes."""

    source: str
    revision: Optional[str]
    config: Any
    tokenizer: Any
    mlm: torch.nn.Module
    inputs: List[str]
    window: int
    zeroed_token_ids: List[int]

    @property
    def vocab_size(self) -> int:
        """The MLM head's output width."""
        return int(self.config.vocab_size)

    def feeds(self, texts: Sequence[str], max_length: int) -> Dict[str, np.ndarray]:
        """The graph feeds of ``texts``: one right-padded int64 batch, truncated to ``max_length`` tokens."""
        options = {"padding": True, "truncation": True, "max_length": max_length, "return_tensors": "np"}
        enc = self.tokenizer(list(texts), **options)
        feeds = {k: np.asarray(enc[k], dtype=np.int64) for k in self.inputs if k in enc}
        if "token_type_ids" in self.inputs and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        return feeds

    def special_tokens(self) -> Dict[str, Dict[str, Any]]:
        """The tokenizer's named special tokens, ``{name: {"token", "id"}}`` (``formula.special_tokens``)."""
        named = {n: getattr(self.tokenizer, f"{n}_token", None) for n in SPECIAL_TOKEN_NAMES}
        names = {n: str(t) for n, t in named.items() if t is not None}
        return special_tokens(names, self.tokenizer.convert_tokens_to_ids)

    @property
    def pad_token_id(self) -> int:
        """The id padded positions get (0 where the tokenizer has no pad token)."""
        return int(self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0)


def load_checkpoint(
    source: str,
    *,
    revision: Optional[str] = None,
    zeroed_ids: Callable[[Any], List[int]] = lambda tokenizer: [],
) -> Checkpoint:
    """Load config, fast tokenizer and masked-LM model of ``source`` (a folder or hub id);
    ``zeroed_ids(tokenizer)`` gives the token ids to zero (``sources.resolve_head``)."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    looks_local = os.path.isabs(source) or source.startswith((".", "~")) or source.count("/") > 1
    if looks_local and not os.path.isdir(source):
        raise ExportError(
            f"{source}: no such checkpoint folder; pass a folder holding config.json and the "
            "weights, a hub repo id, or 'splade-tiny'"
        )
    try:
        config = AutoConfig.from_pretrained(source, revision=revision)
    except (OSError, ValueError) as e:
        raise ExportError(
            f"{source}: not a Hugging Face checkpoint folder or a reachable hub model ({_reason(e)}); "
            "pass a folder holding config.json and the weights, a hub repo id, or 'splade-tiny'"
        ) from e
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, use_fast=True)
    except (OSError, ValueError, TypeError) as e:
        raise ExportError(
            f"{source}: cannot load its tokenizer ({_reason(e)}); the checkpoint needs its tokenizer "
            "files (tokenizer.json, or the vocabulary and tokenizer_config.json)"
        ) from e
    try:
        mlm, loading = AutoModelForMaskedLM.from_pretrained(
            source, revision=revision, dtype=torch.float32, output_loading_info=True
        )
    except (OSError, ValueError) as e:
        raise ExportError(
            f"{source}: cannot load a masked-LM model of type {getattr(config, 'model_type', '?')!r} "
            f"({_reason(e)}); SPLADE needs a masked-LM checkpoint (BERT, RoBERTa, DistilBERT, "
            "ModernBERT, ...)"
        ) from e
    prefix = str(getattr(mlm, "base_model_prefix", "") or "") + "."
    head_missing = [k for k in loading.get("missing_keys", []) if not k.startswith(prefix)]
    if head_missing:
        raise ExportError(
            f"{source}: the checkpoint has no trained MLM head (missing {', '.join(head_missing[:3])}"
            f"{', ...' if len(head_missing) > 3 else ''}); export the SPLADE masked-LM checkpoint "
            "itself, not a bare encoder"
        )
    mlm.eval()
    use_tti = uses_token_type_ids(mlm)
    tok_max = getattr(tokenizer, "model_max_length", None)
    return Checkpoint(
        source=source,
        revision=revision,
        config=config,
        tokenizer=tokenizer,
        mlm=mlm,
        inputs=["input_ids", "attention_mask"] + (["token_type_ids"] if use_tti else []),
        window=model_window(
            getattr(config, "max_position_embeddings", None), str(getattr(config, "model_type", "")), tok_max
        ),
        zeroed_token_ids=list(zeroed_ids(tokenizer)),
    )


def save_tokenizer(tokenizer: Any, dest: str) -> None:
    """Write the fast tokenizer's ``tokenizer.json`` to ``dest`` without truncation or padding (the runtime
    sets its own)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise ExportError(
            "a fast (tokenizers-backed) tokenizer is required and the source has none: add its "
            "tokenizer.json to the checkpoint"
        )
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(backend.to_str())
    tok.no_truncation()
    tok.no_padding()
    tok.save(dest)


__all__ = ["Checkpoint", "load_checkpoint", "save_tokenizer"]
