"""Property-based tests (hypothesis) for text encoding: arbitrary Unicode in, one valid vector per valid text, in
order, and a text's vector does not depend on the rest of its batch (issue 6)."""

from __future__ import annotations

import unicodedata
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_onnx import Expander
from splade_onnx.errors import TextTypeError, TextValueError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# any code point, surrogates included (they must be named, not crash)
any_text = st.text(st.characters(codec=None, exclude_categories=()), min_size=0, max_size=60)
valid_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60).filter(
    lambda t: any(not (c.isspace() or unicodedata.category(c)[0] == "C") for c in t)
)


@pytest.fixture(scope="module")
def expander(tiny_artifact):
    return Expander(tiny_artifact, batch_size=3)


def _ok(v):
    assert np.all(np.diff(v.indices) > 0) and np.all(v.values > 0) and np.all(np.isfinite(v.values))
    assert v.indices.dtype == np.int32 and v.values.dtype == np.float32


@SETTINGS
@given(texts=st.lists(valid_text, min_size=0, max_size=7))
def test_valid_texts_never_raise_and_keep_count_and_order(expander, texts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = expander.expand(texts, max_length=32)
        assert len(out) == len(texts)
        for v in out:
            _ok(v)
        if texts:  # order: the last text alone gives the last vector
            assert out[-1] == expander.expand(texts[-1], max_length=32) or np.allclose(
                out[-1].to_dense(expander.vocab_size),
                expander.expand(texts[-1], max_length=32).to_dense(expander.vocab_size),
                atol=1e-5,
            )


@SETTINGS
@given(texts=st.lists(any_text, min_size=1, max_size=7))
def test_any_unicode_gives_vectors_or_named_positions(expander, texts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            out = expander.expand(texts, max_length=32)
        except (TextTypeError, TextValueError) as e:
            assert e.positions and all(0 <= p < len(texts) for p in e.positions)
            assert len(e.results) == len(texts)
            for i, v in enumerate(e.results):
                assert (v is None) == (i in e.positions)
                if v is not None:
                    _ok(v)
        else:
            assert len(out) == len(texts)
            for v in out:
                _ok(v)


@SETTINGS
@given(target=valid_text, others=st.lists(valid_text, max_size=6), pos=st.integers(0, 6), batch_size=st.integers(1, 5))
def test_same_text_same_vector_whatever_the_batch(expander, target, others, pos, batch_size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        alone = expander.expand([target], max_length=32)[0]
        batch = list(others)
        batch.insert(min(pos, len(batch)), target)
        got = expander.expand(batch, max_length=32, batch_size=batch_size)[min(pos, len(others))]
    a, b = alone.to_dense(expander.vocab_size), got.to_dense(expander.vocab_size)
    assert np.max(np.abs(a - b)) <= 1e-5
