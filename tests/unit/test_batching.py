"""The one batching loop (splade_onnx.encode.batching): every sequence runs exactly once, padded and masked, in runs
that respect the batch size and the logits budget."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from splade_onnx.encode.batching import rows_per_run, run_sequences

VOCAB = 50


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=0, max_size=30),
    batch=st.integers(1, 9),
    budget_rows=st.integers(1, 12),
    tti=st.booleans(),
)
def test_every_sequence_runs_once_under_the_budget(lengths, batch, budget_rows, tti):
    rng = np.random.default_rng(len(lengths))
    seqs = [list(rng.integers(1, VOCAB, size=n)) for n in lengths]
    budget = budget_rows * 40 * VOCAB * 4  # room for budget_rows rows of the longest possible sequence
    runs = []

    def run(feeds):
        ids, mask = feeds["input_ids"], feeds["attention_mask"]
        assert ("token_type_ids" in feeds) == tti
        assert ids.shape == mask.shape and ids.shape[0] <= rows_per_run(ids.shape[1], VOCAB, budget, batch)
        assert ids.shape[0] * ids.shape[1] * VOCAB * 4 <= max(budget, ids.shape[1] * VOCAB * 4)
        runs.append(ids.shape)
        # a row's "weights": its masked token sum in column 0, its length in column 1 (checked below)
        out = np.zeros((ids.shape[0], VOCAB), dtype=np.float32)
        out[:, 0] = (ids * mask).sum(axis=1)
        out[:, 1] = mask.sum(axis=1)
        return out

    seen = []
    for positions, rows in run_sequences(
        run, seqs, vocab_size=VOCAB, pad_id=0, batch_size=batch, budget_bytes=budget, token_type_ids=tti
    ):
        for r, j in enumerate(positions):
            assert rows[r, 0] == sum(seqs[j]) and rows[r, 1] == len(seqs[j])
            seen.append(int(j))
    assert sorted(seen) == list(range(len(seqs)))
    widths = [w for _, w in runs]
    assert widths == sorted(widths, reverse=True)  # longest first


def test_rows_per_run_is_at_least_one_and_at_most_the_batch():
    assert rows_per_run(10_000, 30_522, 1, 32) == 1
    assert rows_per_run(8, 100, 1 << 30, 32) == 32
    assert rows_per_run(256, 30_522, 128 << 20, 32) == 4
