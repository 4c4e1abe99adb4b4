"""Expander behaviour: order, batching, decode, truncation warnings, bad input, providers."""

from __future__ import annotations

import logging
import random
import warnings

import numpy as np
import pytest

from splade_onnx import Expander, SparseVector
from splade_onnx.errors import TextTypeError, TextValueError


@pytest.fixture(scope="module")
def expander(tiny_artifact):
    return Expander(tiny_artifact, batch_size=4)


def test_results_in_input_order_whatever_the_batching(expander, scifact_texts):
    texts = scifact_texts[:40]
    base = expander.expand(texts, max_length=128)
    perm = list(range(len(texts)))
    random.Random(0).shuffle(perm)
    shuffled = expander.expand([texts[i] for i in perm], max_length=128, batch_size=9)
    for j, i in enumerate(perm):
        assert shuffled[j].indices.tolist() == base[i].indices.tolist()
        np.testing.assert_allclose(shuffled[j].values, base[i].values, atol=1e-5)


def test_vector_types(expander):
    v = expander.expand(["sparse retrieval with learned weights"])[0]
    assert isinstance(v, SparseVector)
    assert np.issubdtype(v.indices.dtype, np.integer) and v.values.dtype == np.float32
    assert np.all(np.diff(v.indices) > 0) and np.all(v.values > 0)
    d = v.to_dict()
    assert d["indices"] == v.indices.tolist() and len(d["values"]) == v.nnz


def test_single_string_and_generator(expander):
    one = expander.expand("hello world")
    assert isinstance(one, SparseVector)
    gen = expander.expand(t for t in ["hello world", "bye"])
    assert len(gen) == 2 and gen[0] == one
    assert expander.expand([]) == []


def test_decode_heaviest_first(expander):
    v = expander.expand(["Aspirin reduces the risk of heart attack."])[0]
    top = expander.decode(v, top_k=5)
    assert len(top) == 5
    weights = [w for _, w in top]
    assert weights == sorted(weights, reverse=True)
    assert {"heart", "attack", "risk"} <= {t for t, _ in expander.decode(v)}
    full = expander.decode(v)
    assert len(full) == v.nnz
    rf = expander.to_rank_features(v)
    assert rf == {t: w for t, w in full}


def test_encode_queries_and_documents_use_manifest_lengths(expander):
    long = "protein folding " * 200
    with pytest.warns(UserWarning, match="max_length=64"):
        expander.encode_queries([long])
    with pytest.warns(UserWarning, match="max_length=256"):
        expander.encode_documents([long])


def test_truncation_warned_once_with_count(expander):
    texts = ["short text", "word " * 600, "another short", "word " * 300]
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        expander.expand(texts, max_length=256)
    msgs = [str(w.message) for w in rec if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1 and msgs[0].startswith("2 of 4 text(s)")


def test_no_warning_when_nothing_truncated(expander):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expander.expand(["a short text"], max_length=256)


def test_bad_items_name_positions_and_keep_the_rest(expander):
    texts = ["good one", None, "also good", 42, b"bytes"]
    with pytest.raises(TypeError, match=r"position\(s\) 1 \(NoneType\), 3 \(int\), 4 \(bytes\)") as ei:
        expander.expand(texts)
    err = ei.value
    assert isinstance(err, TextTypeError) and err.positions == [1, 3, 4]
    good = expander.expand(["good one", "also good"])
    assert err.results[0] == good[0] and err.results[2] == good[1]
    assert err.results[1] is None and err.results[3] is None


@pytest.mark.parametrize("bad", ["", "   \n\t", "\ud800"])
def test_empty_or_invalid_text_is_a_value_error(expander, bad):
    with pytest.raises(TextValueError, match="position 1") as ei:
        expander.expand(["fine", bad])
    assert ei.value.results[0] is not None and ei.value.results[1] is None


def test_bad_arguments(expander):
    with pytest.raises(TypeError):
        expander.expand(None)
    with pytest.raises(ValueError, match="window"):
        expander.expand(["x"], max_length=10_000)
    with pytest.raises(ValueError):
        Expander(expander.path, batch_size=0)


def test_cuda_request_falls_back_with_clear_message(tiny_artifact, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; the fallback path cannot be exercised")
    with caplog.at_level(logging.WARNING, logger="splade_onnx"):
        e = Expander(tiny_artifact, providers=["CUDAExecutionProvider"])
    assert e.providers == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text and "onnxruntime-gpu" in caplog.text
    assert e.expand(["still works"])[0].nnz > 0


def test_batches_respect_the_logits_budget(tiny_artifact):
    """A tiny budget forces one text per onnxruntime run; results do not change."""
    texts = ["alpha beta gamma", "delta " * 50, "epsilon"]
    big = Expander(tiny_artifact).expand(texts)
    small = Expander(tiny_artifact, logits_budget_mb=1).expand(texts)
    for a, b in zip(big, small):
        assert a.indices.tolist() == b.indices.tolist()
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)
