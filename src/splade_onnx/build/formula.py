"""What every artifact builder computes and checks, in one place: the SPLADE formula in numpy, the parity
texts and length, the model window, special tokens and the versions recorded in the manifest.

Used by :mod:`splade_onnx.build.fuse` (torch-free) and by the ``splade_onnx_export`` package, so an exported
and a fused artifact are checked on the same texts at the same length and describe their tokenizer the same
way. Numpy and the standard library only.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

# Added to the logits of padding rows before a max over tokens (``-MASK_BIG``): far below any real logit, so
# padding never wins the max, and small enough to stay exact in float32 sums with real logits.
MASK_BIG = 1.0e4

# Built-in parity texts: mixed lengths, scripts and oddities, so every build is checked on a padded batch.
PARITY_TEXTS: List[str] = [
    "what is splade?",
    "a",
    "SPLADE expands a text into a sparse vector over the vocabulary; each weight is log(1 + relu(logit)).",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "희소 검색 모델은 어휘 공간에서 문서를 표현합니다. 한국어 문장도 잘 처리되어야 합니다.",
    "def max_pool(x, mask):\n    return (x * mask[..., None]).max(axis=1)  # numpy 🐍🚀",
    "Emoji only: 😀😃😄😁 and mixed scripts: Ελληνικά, русский, العربية, 日本語, हिन्दी.",
    "Aspirin inhibits cyclooxygenase enzymes, reducing prostaglandin synthesis and thereby inflammation, "
    "fever and pain; low doses are used to prevent cardiovascular events in patients at high risk. " * 8,
    "Q: 2+2? A: 4",
    "Long document. " + " ".join(f"token{i} word{i % 17} science{i % 5}" for i in range(300)),
    "   leading and trailing whitespace   ",
    "NUL\x00 and control\x07 characters, combining marks: e\u0301 a\u0308, right-to-left: שלום עולם",
]

DEFAULT_MODEL_WINDOW = 512
# Hugging Face model types whose position ids start at padding_idx + 1: two positions fewer than the table
# holds.
POSITION_OFFSET_MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")
# The named special tokens a manifest records, in this order.
SPECIAL_TOKEN_NAMES = ("cls", "sep", "pad", "unk", "mask", "bos", "eos")
# Spellings tried for a special token a tokenizer folder does not name in its configs.
SPECIAL_TOKEN_GUESSES = {
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "pad": ("[PAD]", "<pad>"),
    "unk": ("[UNK]", "<unk>"),
    "mask": ("[MASK]", "<mask>"),
}
# Bytes of [texts x length x vocab] float32 logits a parity reference computes at once.
PARITY_BATCH_BYTES = 1 << 29


def activate(x: np.ndarray, activation: str) -> np.ndarray:
    """SPLADE's activation in float64: ``log1p(relu(x))``, or ``log1p(log1p(relu(x)))`` for
    ``log1p_log1p_relu``."""
    y = np.log1p(np.maximum(x.astype(np.float64), 0.0))
    if activation == "log1p_log1p_relu":
        y = np.log1p(y)
    return y


def splade_numpy(
    logits: np.ndarray,
    mask: np.ndarray,
    *,
    activation: str,
    pooling: str,
    zeroed_token_ids: Sequence[int] = (),
) -> np.ndarray:
    """The SPLADE formula on ``[batch, seq, vocab]`` logits, in float64: pool (max or sum) over the real
    tokens of ``act(logits)``, then the zeroed ids set to 0; returned as float32 ``[batch, vocab]``."""
    act = activate(logits, activation) * mask[..., None].astype(np.float64)
    w = act.max(axis=1) if pooling == "max" else act.sum(axis=1)
    if len(zeroed_token_ids):
        w[:, list(zeroed_token_ids)] = 0.0
    return w.astype(np.float32)


def model_window(
    max_position_embeddings: Optional[int], model_type: str = "", tokenizer_max_length: Optional[int] = None
) -> int:
    """The most tokens the model takes: its position table (``DEFAULT_MODEL_WINDOW`` when unknown, two fewer
    for the RoBERTa family), or the tokenizer's ``model_max_length`` when that is smaller."""
    window = (
        max_position_embeddings
        if isinstance(max_position_embeddings, int) and max_position_embeddings > 0
        else DEFAULT_MODEL_WINDOW
    )
    window = int(min(window, 1 << 20))
    if model_type in POSITION_OFFSET_MODEL_TYPES:
        window -= 2  # positions are offset by padding_idx + 1
    if isinstance(tokenizer_max_length, int) and 0 < tokenizer_max_length < window:
        window = tokenizer_max_length
    return window


def _read_json(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


def read_model_window(folder: str) -> Optional[int]:
    """:func:`model_window` of a checkpoint or tokenizer folder (``config.json``, ``tokenizer_config.json``),
    or ``None`` when it holds neither."""
    config_path = os.path.join(folder, "config.json")
    tok_path = os.path.join(folder, "tokenizer_config.json")
    if not (os.path.isfile(config_path) or os.path.isfile(tok_path)):
        return None
    config = _read_json(config_path) if os.path.isfile(config_path) else {}
    tok_config = _read_json(tok_path) if os.path.isfile(tok_path) else {}
    return model_window(
        config.get("max_position_embeddings"),
        str(config.get("model_type", "")),
        tok_config.get("model_max_length"),
    )


def parity_length(document_max_length: int, window: int) -> int:
    """Tokens per parity text: the document length, at least 128 (long enough to mix lengths and padding), at
    most the model window and 512 (the reference computes ``[texts x length x vocab]`` logits)."""
    return min(window, max(document_max_length, 128), 512)


def parity_batch_size(texts: int, length: int, vocab_size: int) -> int:
    """Texts per reference batch so that its float32 logits stay within ``PARITY_BATCH_BYTES`` (at least
    2)."""
    return max(2, min(texts, PARITY_BATCH_BYTES // (length * vocab_size * 4)))


def tolerance_scale(reference: np.ndarray, pooling: str) -> float:
    """What a parity tolerance is relative to: 1 for max pooling (each weight is one activation); for sum
    pooling, which adds up to ``length`` float32 terms whose rounding grows with the weights, the largest
    reference weight (at least 1)."""
    return max(1.0, float(np.max(np.abs(reference)))) if pooling == "sum" else 1.0


def special_tokens(
    names: Mapping[str, str],
    token_to_id: Callable[[str], Optional[int]],
) -> Dict[str, Dict[str, Any]]:
    """``{name: {"token", "id"}}`` for the named special tokens (``SPECIAL_TOKEN_NAMES`` order) the vocabulary
    holds."""
    out: Dict[str, Dict[str, Any]] = {}
    for name in SPECIAL_TOKEN_NAMES:
        token = names.get(name)
        if token is None:
            continue
        i = token_to_id(token)
        if i is not None and int(i) >= 0:
            out[name] = {"token": token, "id": int(i)}
    return out


def special_token_ids(
    specials: Mapping[str, Mapping[str, Any]],
    additional: Iterable[Optional[int]] = (),
) -> List[int]:
    """OpenSearch's zeroing rule: the ids of the named special tokens and of the tokenizer's additional
    special tokens, sorted."""
    ids = {int(v["id"]) for v in specials.values()}
    ids.update(int(i) for i in additional if i is not None and int(i) >= 0)
    return sorted(ids)


def read_special_tokens(
    folder: str, token_to_id: Callable[[str], Optional[int]]
) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """The special tokens of a tokenizer folder: named in ``special_tokens_map.json`` /
    ``tokenizer_config.json`` when present, else guessed from the usual spellings; returns
    ``(special_tokens(...), additional special tokens)``."""
    names: Dict[str, str] = {}
    additional: List[str] = []
    for fname in ("special_tokens_map.json", "tokenizer_config.json"):
        path = os.path.join(folder, fname)
        if not os.path.isfile(path):
            continue
        d = _read_json(path)
        for k in SPECIAL_TOKEN_NAMES:
            v = d.get(f"{k}_token")
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str) and k not in names:
                names[k] = v
        for v in d.get("additional_special_tokens") or []:
            v = v.get("content") if isinstance(v, dict) else v
            if isinstance(v, str) and v not in additional:
                additional.append(v)
    for k, spellings in SPECIAL_TOKEN_GUESSES.items():
        if k not in names:
            for s in spellings:
                if token_to_id(s) is not None:
                    names[k] = s
                    break
    return special_tokens(names, token_to_id), additional


def versions(*packages: str) -> Dict[str, str]:
    """``__version__`` of splade_onnx, then of ``packages`` (e.g. torch, transformers), then of onnx and
    onnxruntime: the manifest's record of what wrote the artifact."""
    out: Dict[str, str] = {}
    for name in ("splade_onnx", *packages, "onnx", "onnxruntime"):
        out[name] = str(importlib.import_module(name).__version__)
    return out


__all__ = [
    "MASK_BIG",
    "PARITY_TEXTS",
    "DEFAULT_MODEL_WINDOW",
    "SPECIAL_TOKEN_NAMES",
    "activate",
    "splade_numpy",
    "model_window",
    "read_model_window",
    "parity_length",
    "parity_batch_size",
    "tolerance_scale",
    "special_tokens",
    "special_token_ids",
    "read_special_tokens",
    "versions",
]
