"""Long documents: overlapping windows merged by max, against the full-context encoding of real SciFact documents."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import doc_text, read_jsonl

from splade_onnx import Expander
from splade_onnx.artifact.manifest import Manifest
from splade_onnx.encode.windows import make_windows, window_starts


@pytest.fixture(scope="module")
def tiny(tiny_artifact):
    return Expander(tiny_artifact)


@pytest.fixture(scope="module")
def long_docs(tiny, datasets_dir):
    """24 real SciFact documents of 300-500 tokens: they fit splade-tiny's 512-token window whole."""
    docs = [doc_text(d) for d in read_jsonl(datasets_dir / "scifact" / "corpus.jsonl", limit=3000)]
    lens = [len(e.ids) for e in tiny.tokenizer.encode_batch(docs)]
    picked = [d for d, n in zip(docs, lens) if 300 <= n <= 500][:24]
    assert len(picked) == 24
    return picked


@pytest.fixture(scope="module")
def full_context(tiny, long_docs):
    return tiny.expand(long_docs, max_length=512)


def _cos(a, b, n):
    da, db = a.to_dense(n), b.to_dense(n)
    return float(da @ db / (np.linalg.norm(da) * np.linalg.norm(db)))


def _top_overlap(a, b, n, k=20):
    da, db = a.to_dense(n), b.to_dense(n)
    return len(set(np.argsort(-da)[:k]) & set(np.argsort(-db)[:k])) / k


def test_window_layout(tiny):
    assert window_starts(10, 10, 5) == [0]
    assert window_starts(25, 10, 5) == [0, 5, 10, 15]
    assert window_starts(23, 10, 5) == [0, 5, 10, 13]  # the last window ends at the text's end
    enc = tiny.tokenizer.encode("word " * 300)
    ws = make_windows(enc, 128, None)
    content = enc.ids[1:-1]
    assert all(w[0] == 101 and w[-1] == 102 and len(w) == 128 for w in ws)  # [CLS] ... [SEP] in every window
    assert len(ws) == len(window_starts(len(content), 126, 63))
    covered = set()
    for s in window_starts(len(content), 126, 63):
        covered.update(range(s, s + 126))
    assert covered == set(range(len(content)))
    with pytest.raises(ValueError, match="stride"):
        make_windows(enc, 128, 127)


def test_short_text_window_equals_plain_encoding(tiny, long_docs, full_context):
    plain = full_context[:8]
    win = tiny.expand(long_docs[:8], max_length=512, long_documents="window")
    for a, b in zip(plain, win):
        assert np.array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)


@pytest.mark.parametrize("window", [128, 256])
def test_windows_track_full_context_better_than_truncation(tiny, long_docs, full_context, window):
    n = tiny.vocab_size
    full = full_context
    win = tiny.expand(long_docs, max_length=window, long_documents="window")
    with pytest.warns(UserWarning, match="truncated"):
        trunc = tiny.expand(long_docs, max_length=window)
    cw = [_cos(f, w, n) for f, w in zip(full, win)]
    ct = [_cos(f, t, n) for f, t in zip(full, trunc)]
    ow = [_top_overlap(f, w, n) for f, w in zip(full, win)]
    ot = [_top_overlap(f, t, n) for f, t in zip(full, trunc)]
    # share of the full-context vector's weight mass on tokens the other vector also activates
    mw = [float(f.to_dense(n)[w.indices].sum() / f.values.sum()) for f, w in zip(full, win)]
    mt = [float(f.to_dense(n)[t.indices].sum() / f.values.sum()) for f, t in zip(full, trunc)]
    print(
        f"window {window}: cosine to full-context mean {np.mean(cw):.4f} (min {np.min(cw):.4f}) vs truncation "
        f"{np.mean(ct):.4f}; full-context mass covered {np.mean(mw):.4f} vs {np.mean(mt):.4f}; top-20 overlap "
        f"{np.mean(ow):.3f} vs truncation {np.mean(ot):.3f}"
    )
    assert np.mean(cw) > np.mean(ct) + 0.03 and np.min(cw) > 0.8
    assert np.mean(mw) > np.mean(mt)
    assert np.mean(ow) > 0.4


def test_window_batching_is_exact_under_any_budget(tiny_artifact, long_docs):
    """Windows of many documents batched under a tiny logits budget (one window per run) give the same vectors."""
    big = Expander(tiny_artifact, batch_size=16)
    small = Expander(tiny_artifact, batch_size=16, logits_budget_mb=1)  # 1 MB < one 128 x 30522 window
    a = big.expand(long_docs[:6], max_length=128, long_documents="window", stride=100)
    b = small.expand(long_docs[:6], max_length=128, long_documents="window", stride=100)
    c = [big.expand(d, max_length=128, long_documents="window", stride=100) for d in long_docs[:6]]
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x.indices, y.indices) and np.array_equal(x.indices, z.indices)
        np.testing.assert_allclose(x.values, y.values, atol=1e-5)
        np.testing.assert_allclose(x.values, z.values, atol=1e-5)


def test_window_mode_from_constructor_and_sum_pooling_refused(tiny_artifact, long_docs, tmp_path):
    e = Expander(tiny_artifact, long_documents="window", stride=64)
    assert e.encode_documents(long_docs[:2], max_length=128) == e.expand(
        long_docs[:2], max_length=128, long_documents="window", stride=64
    )
    with pytest.raises(ValueError, match="long_documents"):
        Expander(tiny_artifact, long_documents="chunks")
    sum_art = tmp_path / "sum"
    shutil.copytree(tiny_artifact, sum_art)
    m = Manifest.read(str(sum_art))
    m.pooling = "sum"
    m.write(str(sum_art))
    with pytest.raises(ValueError, match="max pooling"):
        Expander(str(sum_art)).expand(long_docs[:1], max_length=128, long_documents="window")
    assert os.path.isfile(sum_art / "model.onnx")
