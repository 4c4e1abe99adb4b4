"""The one copy of what every artifact builder computes and checks (``splade_onnx.build.formula``), used
by both ``splade-onnx export`` and ``splade-onnx fuse``: the SPLADE formula in numpy, the parity length,
the model window, special tokens and versions. Torch-free."""

from __future__ import annotations

import numpy as np
import pytest

from splade_onnx.build import formula


def _naive(logits, mask, activation, pooling, zeroed=()):
    b, s, v = logits.shape
    out = np.zeros((b, v), np.float64)
    for i in range(b):
        for t in range(s):
            if not mask[i, t]:
                continue
            a = np.log1p(np.maximum(logits[i, t].astype(np.float64), 0))
            if activation == "log1p_log1p_relu":
                a = np.log1p(a)
            out[i] = np.maximum(out[i], a) if pooling == "max" else out[i] + a
    out[:, list(zeroed)] = 0
    return out.astype(np.float32)


@pytest.mark.parametrize("activation", ["log1p_relu", "log1p_log1p_relu"])
@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_splade_numpy_is_the_formula(activation, pooling):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(3, 7, 50)).astype(np.float32)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] + [0] * 6])
    logits[1, 4:] = 100.0  # padding rows with the largest logits: they must not count
    got = formula.splade_numpy(logits, mask, activation=activation, pooling=pooling, zeroed_token_ids=[2, 5])
    np.testing.assert_allclose(got, _naive(logits, mask, activation, pooling, [2, 5]), rtol=1e-6, atol=0)
    assert got.dtype == np.float32 and np.all(got[:, [2, 5]] == 0) and np.all(got[1] < 20)


def test_model_window():
    assert formula.model_window(512, "bert") == 512
    assert formula.model_window(514, "roberta") == 512  # positions start at padding_idx + 1
    assert formula.model_window(514, "xlm-roberta", 256) == 256  # the tokenizer's smaller window wins
    assert formula.model_window(512, "bert", int(1e30)) == 512  # transformers' "no limit" sentinel
    assert formula.model_window(None, "bert") == formula.DEFAULT_MODEL_WINDOW
    assert formula.model_window(8192, "modernbert") == 8192


def test_parity_length_is_bounded():
    assert formula.parity_length(256, 512) == 256
    assert formula.parity_length(64, 512) == 128  # long enough to mix lengths and padding
    assert formula.parity_length(8192, 8192) == 512  # [texts x length x vocab] logits stay bounded
    assert formula.parity_length(256, 100) == 100


def test_parity_batch_size_bounds_the_logits():
    assert formula.parity_batch_size(12, 256, 30522) == 12
    n = formula.parity_batch_size(12, 512, 250_002)
    assert n == 2 and n * 512 * 250_002 * 4 > formula.PARITY_BATCH_BYTES  # at least 2, so every batch pads


def test_folder_window_and_special_tokens(tiny_checkpoint, tmp_path):
    from tokenizers import Tokenizer

    assert formula.read_model_window(tiny_checkpoint) == 512
    assert formula.read_model_window(str(tmp_path)) is None
    tok = Tokenizer.from_file(f"{tiny_checkpoint}/tokenizer.json")
    specials, additional = formula.read_special_tokens(tiny_checkpoint, tok.token_to_id)
    ids = {k: v["id"] for k, v in specials.items()}
    assert ids == {"cls": 101, "sep": 102, "pad": 0, "unk": 100, "mask": 103}
    additional_ids = [tok.token_to_id(t) for t in additional]
    assert formula.special_token_ids(specials, additional_ids) == [0, 100, 101, 102, 103]
    # a folder without tokenizer configs: the usual spellings are found in the vocabulary
    guessed, _ = formula.read_special_tokens(str(tmp_path), tok.token_to_id)
    assert guessed == specials


def test_versions_order():
    v = formula.versions("numpy")
    assert list(v) == ["splade_onnx", "numpy", "onnx", "onnxruntime"] and all(v.values())
