"""Long documents: overlapping windows merged by max, under the Expander's logits memory budget.

A text whose tokens do not fit ``window`` (the ``max_length`` of the call) is cut into windows of
``window - n_special`` content tokens, each wrapped in the tokenizer's own special tokens (``[CLS] ... [SEP]`` for
BERT, ``<s> ... </s>`` for RoBERTa-style tokenizers), starting every ``stride`` content tokens (default: half a window,
so every token is seen by two windows except at the ends); the last window is aligned to the end of the text. Each
window is one row of the fused graph, whose output is already max-pooled over its tokens; the document's vector is the
element-wise **max** over its windows, which is exactly what max pooling over the whole text would give if each token's
logits did not depend on the context outside its window.

Sum pooling is refused: summing windows would count the overlap twice and add the special tokens once per window.

Memory: windows of many documents are batched together, ``rows x window x vocab x 4`` bytes of logits per run capped by
``Expander.logits_budget_bytes`` (at least one window per run), and the dense per-document max accumulators are kept
for a bounded group of documents at a time, so peak memory does not grow with the length of a document.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from splade_onnx.encode.session import SpladeSession
from splade_onnx.vectors import SparseVector

MODES = ("truncate", "window")


def check_mode(mode: Optional[str]) -> str:
    if mode is None:
        return "truncate"
    if mode not in MODES:
        raise ValueError(f"long_documents must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def split_special(ids: Sequence[int], special_mask: Sequence[int]) -> Tuple[List[int], List[int], List[int]]:
    """``(prefix, content, suffix)``: the leading and trailing special tokens the post-processor added, and the rest."""
    n = len(ids)
    p = 0
    while p < n and special_mask[p]:
        p += 1
    s = 0
    while s < n - p and special_mask[n - 1 - s]:
        s += 1
    ids = list(ids)
    return ids[:p], ids[p : n - s], ids[n - s :]


def window_starts(n_content: int, width: int, stride: int) -> List[int]:
    """Start offsets of windows of ``width`` content tokens every ``stride``, the last one ending at the text's end."""
    if n_content <= width:
        return [0]
    starts = list(range(0, n_content - width + 1, stride))
    if starts[-1] + width < n_content:
        starts.append(n_content - width)
    return starts


def make_windows(encoding: Any, window: int, stride: Optional[int]) -> List[List[int]]:
    """The id sequences (special tokens included) of one text's windows."""
    prefix, content, suffix = split_special(encoding.ids, encoding.special_tokens_mask)
    width = window - len(prefix) - len(suffix)
    if width < 1:
        raise ValueError(
            f"a window of {window} tokens leaves no room for text after {len(prefix) + len(suffix)} special tokens"
        )
    if stride is None:
        stride = max(1, width // 2)
    if not isinstance(stride, int) or not 1 <= stride <= width:
        raise ValueError(f"stride must be an int in [1, {width}] (the window's content tokens), got {stride!r}")
    return [prefix + content[s : s + width] + suffix for s in window_starts(len(content), width, stride)]


def encode_windowed(
    session: SpladeSession,
    tokenizer: Any,
    texts: List[str],
    *,
    window: int,
    stride: Optional[int],
    batch_size: int,
    budget_bytes: int,
    pooling: str,
) -> List[SparseVector]:
    """Encode ``texts`` with windows of ``window`` tokens merged by max (see the module docstring), through the
    session's batching loop. ``tokenizer`` is the artifact's untruncated tokenizer."""
    if pooling != "max":
        raise ValueError(
            f"long_documents='window' needs max pooling; this model uses {pooling!r} pooling, where "
            "merging windows would count overlapping tokens twice. Truncate instead, or split the text "
            "into passages yourself"
        )
    vocab = session.vocab_size
    out: List[Optional[SparseVector]] = [None] * len(texts)
    # documents are processed in groups whose dense [docs x vocab] accumulators stay under a quarter of the budget
    group_docs = max(1, (budget_bytes // 4) // (vocab * 4))
    for g0 in range(0, len(texts), group_docs):
        g1 = min(len(texts), g0 + group_docs)
        seqs: List[List[int]] = []
        owner: List[int] = []
        for d, e in enumerate(tokenizer.encode_batch(texts[g0:g1])):
            ws = make_windows(e, window, stride)
            seqs.extend(ws)
            owner.extend([d] * len(ws))
        acc = np.zeros((g1 - g0, vocab), dtype=np.float32)
        for idx, dense in session.run_sequences(seqs, batch_size=batch_size, budget_bytes=budget_bytes):
            for r, j in enumerate(idx):
                np.maximum(acc[owner[j]], dense[r], out=acc[owner[j]])
            del dense
        for d in range(g1 - g0):
            out[g0 + d] = SparseVector.from_dense(acc[d])
        del acc
    return out  # type: ignore[return-value]


def count_windows(tokenizer: Any, text: str, window: int, stride: Optional[int] = None) -> int:
    """How many windows ``text`` takes (for planning and reporting); ``tokenizer`` is untruncated."""
    return len(make_windows(tokenizer.encode(text), window, stride))
