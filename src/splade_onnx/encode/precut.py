"""Cheap pre-cut of huge texts before tokenization, made so it can never change the result.

Tokenizing a 10 MB string only to keep its first 256 tokens costs seconds and a gigabyte of memory (tokenizers
normalizes and splits the whole string first). For tokenizers whose pre-tokenizer splits words at whitespace
(BERT's, ``Whitespace``, ``ByteLevel``, ``Metaspace``), words never span a whitespace, so the tokens of a prefix
cut just before a space are exactly the first tokens of the full text. A prefix is used only when the
tokenizer says it still overflows ``max_length`` (so the kept tokens and the truncation warning are the same as for
the full text); otherwise the full text is tokenized as before.

For BERT's normalizer with ``handle_chinese_chars`` (each CJK ideograph is its own word) and BERT's pre-tokenizer
(each punctuation character is its own word) those characters are cut points too.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Callable, List, Optional

# A prefix of max_length * CHARS_PER_TOKEN characters holds max_length tokens for any ordinary text (English runs
# about 4-5 characters per token); when it does not, the full text is used, so this only decides when cutting pays.
CHARS_PER_TOKEN = 32
MIN_CUT_CHARS = 4096

# Cut after a non-whitespace character followed by a plain space (U+0020): a word boundary for every supported
# pre-tokenizer (Metaspace splits on U+0020 only; BERT's normalizer deletes some characters Python calls whitespace).
_WS_CUT = re.compile(r"\S(?= )")


def _is_cjk(cp: int) -> bool:  # the ranges BERT's normalizer pads with spaces
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_bert_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def cutter_for(tokenizer: Any) -> Optional[Callable[[str, int], Optional[int]]]:
    """Return ``cut(text, limit) -> index or None`` for tokenizers whose words never span a cut point, else None."""
    pre = getattr(tokenizer, "pre_tokenizer", None)
    kind = type(pre).__name__ if pre is not None else ""
    if kind == "ByteLevel" and not getattr(pre, "use_regex", True):
        return None
    if kind == "Metaspace" and not getattr(pre, "split", True):
        return None
    if kind not in ("BertPreTokenizer", "Whitespace", "WhitespaceSplit", "ByteLevel", "Metaspace"):
        return None
    norm = getattr(tokenizer, "normalizer", None)
    bert = kind == "BertPreTokenizer"
    cjk = bert and type(norm).__name__ == "BertNormalizer" and bool(getattr(norm, "handle_chinese_chars", False))

    def cut(text: str, limit: int) -> Optional[int]:
        lo = limit // 2
        window = text[lo:limit]
        best = -1
        for m in _WS_CUT.finditer(window):
            best = m.end()
        if bert and best < 0:
            # a punctuation character or (with handle_chinese_chars) an ideograph starts a word of its own:
            # cut just before one, scanning back from the end of the window
            for k in range(len(window) - 1, 0, -1):
                ch = window[k]
                if _is_bert_punct(ch) or (cjk and _is_cjk(ord(ch))):
                    prev = window[k - 1]
                    if not unicodedata.category(prev).startswith("M"):
                        best = k
                        break
        return lo + best if best > 0 else None

    return cut


def precut(texts: List[str], max_length: int, tokenizer: Any, truncating_tokenizer: Any) -> List[str]:
    """Replace texts far longer than ``max_length`` tokens by a prefix that tokenizes to the same kept tokens."""
    limit = max(MIN_CUT_CHARS, max_length * CHARS_PER_TOKEN)
    long_idx = [i for i, t in enumerate(texts) if len(t) > 2 * limit]
    if not long_idx:
        return texts
    cut = cutter_for(tokenizer)
    if cut is None:
        return texts
    out = list(texts)
    cand = []
    for i in long_idx:
        k = cut(texts[i], limit)
        if k is not None:
            cand.append((i, texts[i][:k]))
    if not cand:
        return out
    encs = truncating_tokenizer.encode_batch([p for _, p in cand])
    for (i, prefix), e in zip(cand, encs):
        if e.overflowing:  # the prefix alone overflows: the kept tokens are those of the full text
            out[i] = prefix
    return out
