"""Text -> token ids: loading and checking an artifact's tokenizer, per-length truncating views of it, and the
validation of input texts that every encoder (model or IDF) applies before tokenizing."""

from __future__ import annotations

import logging
import threading
import unicodedata
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from splade_onnx.artifact.manifest import Manifest
from splade_onnx.errors import ArtifactError, TextTypeError, TextValueError

log = logging.getLogger("splade_onnx")


def load_tokenizer(tok_path: str, manifest: Manifest) -> Any:
    """The artifact's ``tokenizers.Tokenizer`` (no padding, no truncation), checked against the manifest: not more
    tokens than the graph's output, and the special tokens at the manifest's ids. A mismatch raises
    :class:`~splade_onnx.errors.ArtifactError`."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(tok_path)
    except Exception as e:  # noqa: BLE001
        raise ArtifactError(f"tokenizer cannot be read ({e}); re-export the artifact", tok_path) from e
    vocab_n = tok.get_vocab_size(with_added_tokens=True)
    if vocab_n > manifest.vocab_size:
        raise ArtifactError(
            f"tokenizer has {vocab_n} tokens but the model outputs {manifest.vocab_size} weights; "
            "the tokenizer does not belong to this model; re-export the artifact (or copy the model's own "
            "tokenizer.json back)",
            tok_path,
        )
    # a few ids of padding are common (embeddings rounded up to a multiple of 8/64); far fewer tokens is not
    # (a smaller tokenizer cannot produce an out-of-range id, and random-init test models pair real vocab sizes
    # with a substitute tokenizer, so it is a warning; a foreign tokenizer is caught by the special-token ids)
    if vocab_n < 0.9 * manifest.vocab_size:
        log.warning(
            "%s: tokenizer has %d tokens, far fewer than the %d weights the model outputs; output dimensions "
            "past %d can still fire but no text token maps to them. If this is not intended, re-export the "
            "artifact with the model's own tokenizer.",
            tok_path,
            vocab_n,
            manifest.vocab_size,
            vocab_n,
        )
    for role, spec in (manifest.special_tokens or {}).items():
        if not isinstance(spec, dict) or spec.get("token") is None or spec.get("id") is None:
            continue
        got = tok.token_to_id(str(spec["token"]))
        if got != spec["id"]:
            raise ArtifactError(
                f"tokenizer maps the {role} token {spec['token']!r} to id {got}, the manifest says {spec['id']}; "
                "the tokenizer does not belong to this model: re-export the artifact (or copy the model's own "
                "tokenizer.json back)",
                tok_path,
            )
    tok.no_padding()
    tok.no_truncation()
    return tok


class TruncatingTokenizer:
    """A shared tokenizer seen through a ``max_length``: it truncates exactly as ``tokenizers``' own truncation does
    (cut the sequence to ``max_length`` minus the special tokens, then post-process), without a second parsed copy of
    ``tokenizer.json`` per length (a copy costs ~25 ms of cold start on a 30k vocabulary) and without mutating the
    shared tokenizer, so threads can use any length at once. Over-long encodings keep ``.overflowing`` non-empty."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self._tok = tokenizer
        self._room = max(0, int(max_length) - tokenizer.num_special_tokens_to_add(False))
        self.truncation = {
            "max_length": int(max_length),
            "stride": 0,
            "strategy": "longest_first",
            "direction": "right",
        }

    def _finish(self, enc: Any) -> Any:
        if len(enc.ids) > self._room:
            enc.truncate(self._room)
        return self._tok.post_process(enc)

    def encode(self, text: str) -> Any:
        return self._finish(self._tok.encode(text, add_special_tokens=False))

    def encode_batch(self, texts: List[str]) -> List[Any]:
        if len(texts) == 1:  # a single query: skip the thread-pool hand-off of encode_batch (~40 us of ~2 ms)
            return [self.encode(texts[0])]
        return [self._finish(e) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


class TokenizerViews:
    """One parsed tokenizer and its truncating views, one per ``max_length``, created once under a lock."""

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.base = tokenizer
        self.vocab_size = vocab_size
        self._by_len: Dict[int, TruncatingTokenizer] = {}
        self._lock = threading.Lock()
        self._vocab: Optional[List[str]] = None

    def truncating(self, max_length: int) -> TruncatingTokenizer:
        """The shared tokenizer truncating at ``max_length`` (cached per length)."""
        tok = self._by_len.get(max_length)
        if tok is None:
            with self._lock:
                tok = self._by_len.get(max_length)
                if tok is None:
                    tok = TruncatingTokenizer(self.base, max_length)
                    self._by_len[max_length] = tok
        return tok

    @property
    def vocab(self) -> List[str]:
        """Token strings by id (``""`` for ids the tokenizer does not cover)."""
        if self._vocab is None:
            v = [""] * self.vocab_size
            for tok, i in self.base.get_vocab(with_added_tokens=True).items():
                if 0 <= i < len(v):
                    v[i] = tok
            self._vocab = v
        return self._vocab


def validate_texts(items: Sequence[object]) -> Tuple[List[int], List[Tuple[int, str]], List[int]]:
    """``(bad_type, bad_value, good)`` positions: not a ``str``; a ``str`` that cannot be encoded (empty,
    whitespace-only, only control/format characters, a lone surrogate) with the reason; and the rest."""
    bad_type: List[int] = []
    bad_value: List[Tuple[int, str]] = []
    good: List[int] = []
    for i, t in enumerate(items):
        if not isinstance(t, str):
            bad_type.append(i)
        elif not t.strip():
            bad_value.append((i, "empty or whitespace-only text"))
        else:
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:
                bad_value.append((i, "not valid Unicode (lone surrogate); fix the text's encoding"))
                continue
            if not any(not (c.isspace() or unicodedata.category(c)[0] == "C") for c in t):  # stops at 1st letter
                bad_value.append((i, "only control/format characters (nothing to tokenize)"))
                continue
            good.append(i)
    return bad_type, bad_value, good


def raise_bad_texts(
    items: Sequence[object], bad_type: List[int], bad_value: List[Tuple[int, str]], results: List[Any]
) -> NoReturn:
    """Raise :class:`TextTypeError` or :class:`TextValueError` (whichever bad item comes first) naming every bad
    position, with ``results`` (the other texts' vectors, ``None`` at the bad positions) on the exception."""
    first_type = bad_type[0] if bad_type else len(items)
    first_value = bad_value[0][0] if bad_value else len(items)
    parts = []
    if bad_type:
        parts.append(
            "not a str at position(s) "
            + ", ".join(f"{i} ({type(items[i]).__name__})" for i in bad_type[:10])
            + (" ..." if len(bad_type) > 10 else "")
        )
    if bad_value:
        parts.append("; ".join(f"position {i}: {why}" for i, why in bad_value[:10]))
    msg = "; ".join(parts) + ". The other texts were encoded: see the exception's .results"
    if first_type < first_value:
        raise TextTypeError(msg, bad_type + [i for i, _ in bad_value], results)
    raise TextValueError(msg, [i for i, _ in bad_value] + bad_type, results)
