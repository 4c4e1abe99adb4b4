"""The hostile-input catalogue: every odd input gets a valid vector or a TypeError/ValueError naming its position,
and the rest of the batch is kept (issue 6)."""

from __future__ import annotations

import resource
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_onnx import Expander, SparseVector
from splade_onnx.encode import precut as _precut
from splade_onnx.errors import TextTypeError, TextValueError

GOOD = "aspirin lowers the risk of heart attack"


@pytest.fixture(scope="module")
def expander(tiny_artifact):
    return Expander(tiny_artifact, batch_size=4)


@pytest.fixture(scope="module")
def good_vec(expander):
    return expander.expand(GOOD)


def _valid(v) -> None:
    assert isinstance(v, SparseVector)
    assert v.nnz > 0
    assert np.all(np.diff(v.indices) > 0) and np.all(v.values > 0) and np.all(np.isfinite(v.values))


# ------------------------------------------------------------------ texts that must give a valid vector
VALID = {
    "nul_and_controls": "heart\x00 attack\x07 risk\x1b[31m red\x7f",
    "tabs_newlines_crlf": "line one\r\nline two\tcolumn\x0bvt\x0cff",
    "combining_marks": "cafe\u0301 nai\u0308ve Z\u0351\u0316a\u0300\u0301\u0302\u0303lgo\u0489",
    "only_combining_after_letter": "e" + "\u0301" * 500,
    "rtl_hebrew_arabic": (
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd "
        "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645"
    ),
    "bidi_overrides": "\u202eevil\u202c text \u2066isolate\u2069 \u200fmark",
    "emoji_zwj_flags": (
        "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \U0001f44d\U0001f3fd heart \u2764\ufe0f"
    ),
    "mixed_scripts": (
        "SPLADE \u6f22\u5b57 \ud55c\uad6d\uc5b4 \u0440\u0443\u0441\u0441\u043a\u0438\u0439 "
        "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0939\u093f\u0928\u094d\u0926\u0940 \u0e44\u0e17\u0e22"
    ),
    "zero_width_inside": "hea\u200brt at\u200ctack \ufeffrisk",
    "one_char": "a",
    "one_punct": "?",
    "math_and_symbols": "\u2211 x\u00b2 \u2264 \u221e \u00a9 \u2122 \U0001d4d7\U0001d4ee\U0001d4f5\U0001d4f5\U0001d4f8",
    "private_use_and_nonchars": "\ue000\uf8ff text \ufffd \U000f0000",
    "very_long_word": "x" * 5000,
    "html_and_code": "<script>alert('x')</script> SELECT * FROM t; -- \\x00 %s {0} ${HOME}",
    "str_subclass": type("MyStr", (str,), {})("a str subclass is still a str"),
    "numpy_str": np.str_("a numpy string scalar"),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_odd_but_valid_text_gives_a_vector_and_keeps_the_batch(expander, good_vec, name):
    text = VALID[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # very_long_word etc. may truncate
        out = expander.expand([GOOD, text, GOOD])
    assert len(out) == 3
    _valid(out[1])
    assert out[0] == good_vec and out[2] == good_vec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert expander.expand(text) == out[1]  # a single str gives the same vector


# ------------------------------------------------------------------ items refused inside a batch
BAD_ITEMS = {
    "none": (None, TextTypeError, "NoneType"),
    "bytes": (b"heart attack", TextTypeError, "bytes"),
    "bytearray": (bytearray(b"x"), TextTypeError, "bytearray"),
    "int": (42, TextTypeError, "int"),
    "float_nan": (float("nan"), TextTypeError, "float"),
    "nested_list": (["heart", "attack"], TextTypeError, "list"),
    "dict_item": ({"text": "x"}, TextTypeError, "dict"),
    "empty": ("", TextValueError, "empty or whitespace-only"),
    "spaces": ("   ", TextValueError, "empty or whitespace-only"),
    "unicode_whitespace": ("\u3000\u00a0\u2003\n\t", TextValueError, "empty or whitespace-only"),
    "only_controls": ("\x00\x01\x02\u200b\ufeff", TextValueError, "only control/format"),
    "lone_high_surrogate": ("\ud800", TextValueError, "lone surrogate"),
    "lone_low_surrogate_in_text": ("heart \udc00 attack", TextValueError, "lone surrogate"),
}


@pytest.mark.parametrize("name", sorted(BAD_ITEMS))
@pytest.mark.parametrize("pos", [0, 2])
def test_bad_item_is_named_and_the_rest_is_kept(expander, good_vec, name, pos):
    bad, exc, why = BAD_ITEMS[name]
    batch = [GOOD, GOOD, GOOD]
    batch.insert(pos, bad)
    with pytest.raises(exc) as ei:
        expander.expand(batch)
    e = ei.value
    assert isinstance(e, TypeError if exc is TextTypeError else ValueError)
    assert e.positions == [pos]
    assert str(pos) in str(e) and why in str(e)
    assert len(e.results) == 4 and e.results[pos] is None
    assert all(v == good_vec for i, v in enumerate(e.results) if i != pos)


def test_several_bad_items_all_named(expander, good_vec):
    batch = [None, GOOD, "", b"x", GOOD, "\ud800"]
    with pytest.raises(TextTypeError) as ei:  # the first bad item is a type error
        expander.expand(batch)
    assert sorted(ei.value.positions) == [0, 2, 3, 5]
    assert ei.value.results[1] == good_vec and ei.value.results[4] == good_vec
    with pytest.raises(TextValueError) as ei2:  # the first bad item is a value error
        expander.expand(["", None])
    assert sorted(ei2.value.positions) == [0, 1]


# ------------------------------------------------------------------ the whole argument
@pytest.mark.parametrize(
    "arg, match",
    [
        (None, "NoneType"),
        (42, "int"),
        (3.5, "float"),
        (b"bytes", "bytes"),
        ({"a": "heart"}, "dict"),
        ({"heart", "attack"}, "set"),
    ],
    ids=["none", "int", "float", "bytes", "dict", "set"],
)
def test_whole_argument_of_wrong_type(expander, arg, match):
    with pytest.raises(TypeError, match=match):
        expander.expand(arg)


def test_empty_list_and_empty_generator(expander):
    assert expander.expand([]) == []
    assert expander.expand(iter(())) == []
    assert expander.expand(np.array([], dtype=str)) == []


def test_ordered_iterables_all_work(expander, good_vec):
    other = expander.expand("kidney stones")
    want = [good_vec, other]
    assert expander.expand((GOOD, "kidney stones")) == want
    assert expander.expand(t for t in [GOOD, "kidney stones"]) == want
    assert expander.expand(np.array([GOOD, "kidney stones"])) == want
    assert expander.expand({GOOD: 1, "kidney stones": 2}.keys()) == want  # a view is an ordered iterable


def test_generator_with_a_bad_item(expander, good_vec):
    with pytest.raises(TextTypeError) as ei:
        expander.expand(x for x in [GOOD, None, GOOD])
    assert ei.value.positions == [1] and ei.value.results[0] == good_vec


# ------------------------------------------------------------------ the 10 MB string
def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


@pytest.mark.parametrize(
    "unit",
    ["heart attack risk café ", "漢字", "Hello, world! ", "x" * 99 + " "],
    ids=["latin_words", "cjk_no_spaces", "punct", "long_words"],
)
def test_ten_megabyte_string(expander, unit):
    big = unit * (10_000_000 // len(unit))
    before = _rss_mb()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = expander.expand([GOOD, big])
    grown = _rss_mb() - before
    msgs = [str(w.message) for w in rec if issubclass(w.category, UserWarning)]
    assert len(msgs) == 1 and msgs[0].startswith("1 of 2 text(s)")  # the truncation warning is still right
    _valid(out[1])
    # same vector as tokenizing the whole text: compare with the kept token ids of the full tokenizer output
    tok = expander.tokenizer_for(expander.manifest.max_length["document"])
    full_ids = tok.encode(big[:200_000]).ids  # 200 kB: still far over max_length, tokenized in full here
    cut = _precut.precut([big], expander.manifest.max_length["document"], expander.tokenizer, tok)[0]
    assert len(cut) < 100_000, "the 10 MB text should have been pre-cut"
    assert tok.encode(cut).ids == full_ids
    assert grown < 400, f"RSS grew {grown:.0f} MB for one 10 MB text (tokenizing it whole takes ~1.2 GB)"


# ------------------------------------------------------------------ property: the pre-cut never changes tokens
_alphabet = st.sampled_from(
    list("abc xyz,.!?'-")
    + [
        " ",
        "  ",
        "\t",
        "\n",
        "\u00e9",
        "e\u0301",
        "\u6f22",
        "\u5b57",
        "\U0001f600",
        "\x00",
        "\u200b",
        "\u0645",
        "\u3000",
        "\u00a0",
        "1",
        "##",
        "[SEP]",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(st.lists(_alphabet, min_size=1, max_size=12).map("".join), min_size=1, max_size=40),
    reps=st.integers(1, 4),
)
def test_precut_keeps_exactly_the_tokens(expander, pieces, reps):
    max_length = 16
    limit = max(_precut.MIN_CUT_CHARS, max_length * _precut.CHARS_PER_TOKEN)
    base = "".join(pieces)
    text = (base * (1 + (2 * limit * reps) // max(1, len(base))))[: 2 * limit * reps + 7]
    tok = expander.tokenizer_for(max_length)
    cut = _precut.precut([text], max_length, expander.tokenizer, tok)[0]
    full = tok.encode(text)
    short = tok.encode(cut)
    assert short.ids == full.ids
    assert bool(short.overflowing) == bool(full.overflowing)
