"""The one batching loop: token sequences -> padded onnxruntime runs under the logits memory budget.

Sequences are run longest first (the biggest allocation happens once, early) in groups of similar length; each run
holds at most ``batch_size`` rows and few enough that its ``rows x seq x vocab`` float32 head product fits the budget
(at least one row, so one sequence of any length always runs). Peak memory of a call is then about the loaded model
+ this budget + the run's encoder activations, whatever the batch size and text length.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, Sequence, Tuple

import numpy as np

# Peak bytes of the [tokens x vocab] logits of one onnxruntime run; batches are split to stay under it.
DEFAULT_LOGITS_BUDGET_MB = 128
# The default on CUDA: a GPU wants whole batches (on an H200, Expander.expand at batch 128 x 256 tokens ran at
# 843 docs/s under 128 MB, which cuts that batch into runs of 4 rows, and at 1,619 under 4,096 MB, one run), and
# the fused head never holds the whole product (bert-base shape, fp16, 128 x 256 in one run: 2.7 GB of GPU memory
# for the whole process).
CUDA_LOGITS_BUDGET_MB = 4096

RunFn = Callable[[Dict[str, np.ndarray]], np.ndarray]


def rows_per_run(seq: int, vocab: int, budget_bytes: int, batch_size: int) -> int:
    """Rows per onnxruntime run: at most ``batch_size``, and few enough that the run's ``rows x seq x vocab``
    float32 head product fits ``budget_bytes`` (at least one row)."""
    return int(max(1, min(batch_size, budget_bytes // max(1, seq * vocab * 4))))


def run_sequences(
    run: RunFn,
    sequences: Sequence[Sequence[int]],
    *,
    vocab_size: int,
    pad_id: int,
    batch_size: int,
    budget_bytes: int,
    token_type_ids: bool = False,
) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Run every sequence through ``run`` (a feeds -> ``[rows, vocab]`` function) and yield ``(positions, rows)``:
    the positions in ``sequences`` of one run and the run's output rows, in the same order."""
    n = len(sequences)
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")
    start = 0
    while start < n:
        seq = int(lengths[order[start]])
        rows = min(rows_per_run(seq, vocab_size, budget_bytes, batch_size), n - start)
        idx = order[start : start + rows]
        ids = np.full((rows, seq), pad_id, dtype=np.int64)
        mask = np.zeros((rows, seq), dtype=np.int64)
        for r, j in enumerate(idx):
            s = sequences[j]
            ids[r, : len(s)] = s
            mask[r, : len(s)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(ids)
        yield idx, run(feeds)
        start += rows
