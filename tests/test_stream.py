"""Streaming: expand_iter yields in order, holds only a chunk, and keeps resident memory flat (issue 6)."""

from __future__ import annotations

import gc
import itertools
import warnings

import pytest

from splade_onnx import Expander
from splade_onnx.errors import TextTypeError

WORDS = "heart attack aspirin kidney stone protein folding gene expression cancer risk vitamin immune cell".split()


def _doc(i: int) -> str:
    return " ".join(WORDS[(i * 5 + j) % len(WORDS)] + str((i + j) % 97) for j in range(8 + i % 24))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def expander(tiny_artifact):
    return Expander(tiny_artifact, batch_size=32)


def test_stream_equals_expand_and_is_lazy(expander):
    pulled = []

    def gen():
        for i in range(70):
            pulled.append(i)
            yield _doc(i)

    it = expander.expand_iter(gen(), chunk_size=16, max_length=64)
    first = next(it)
    assert len(pulled) == 16  # only the first chunk was pulled from the source
    rest = list(it)
    assert [first] + rest == expander.expand([_doc(i) for i in range(70)], max_length=64)
    assert list(expander.expand_iter([], chunk_size=4)) == []


def test_deprecated_aliases_warn_and_give_the_same_vectors(expander):
    texts = [_doc(i) for i in range(3)]
    with pytest.warns(DeprecationWarning, match="expand_iter"):
        assert list(expander.encode_stream(texts, chunk_size=2)) == expander.expand(texts)
    with pytest.warns(DeprecationWarning, match="encode_queries"):
        assert expander.encode_query(texts) == expander.encode_queries(texts)
    with pytest.warns(DeprecationWarning, match="encode_documents"):
        assert expander.encode_document(texts[0]) == expander.encode_documents(texts[0])


def test_stream_bad_item_names_the_stream_position(expander):
    src = [_doc(i) for i in range(10)]
    src[7] = None  # type: ignore[call-overload]
    got = []
    with pytest.raises(TextTypeError) as ei:
        for v in expander.expand_iter(src, chunk_size=4):
            got.append(v)
    assert len(got) == 4  # the first chunk was yielded before the failing one
    assert ei.value.positions == [7] and "stream position" in str(ei.value)
    assert ei.value.results[0] is not None and ei.value.results[3] is None


def test_stream_arguments(expander):
    with pytest.raises(TypeError):
        list(expander.expand_iter("a single string"))
    with pytest.raises(ValueError):
        list(expander.expand_iter(["x"], chunk_size=0))


def test_progress_bar_optional(expander, capsys):
    out = list(expander.expand_iter((_doc(i) for i in range(20)), chunk_size=8, progress=True, total=20))
    assert len(out) == 20
    err = capsys.readouterr().err
    try:
        import tqdm  # noqa: F401

        # the bar is drawn (its final state may be cleared: leave=False), on stderr, with the stream's total
        assert "/20" in err and "text" in err
    except ImportError:  # pragma: no cover - tqdm is optional: no bar, same vectors
        assert err == ""
    list(expander.expand_iter((_doc(i) for i in range(5)), progress=False))
    assert capsys.readouterr().err == ""


def test_rss_flat_over_a_few_thousand_documents(expander):
    """1,500 documents streamed in chunks of 100, the vectors dropped as they come: RSS after the warm-up chunk stays
    within 60 MB. Buffering is caught by the laziness test above; this one catches leaks: anything kept per document
    at the scale of one dense output row (30,522 float32 = 122 KB, e.g. the model outputs or padded feeds of past
    chunks) would grow RSS by ~180 MB over the stream and fail it."""
    n, chunk = 1500, 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(expander.expand_iter((_doc(i) for i in range(chunk)), chunk_size=chunk, max_length=32))  # warm-up
        gc.collect()
        start = _rss_mb()
        samples = []
        kept_nnz = 0
        for i, v in enumerate(expander.expand_iter((_doc(i) for i in range(n)), chunk_size=chunk, max_length=32)):
            kept_nnz += v.nnz
            if i % 300 == 299:
                samples.append(_rss_mb())
    end = _rss_mb()
    # keeping 1,500 vectors of ~100 nnz plus their texts and encodings is ~10 MB; a buffering generator (or one
    # that kept every chunk's padded feeds) grows much more. 60 MB of slack absorbs allocator noise.
    assert kept_nnz > n * 10
    assert max(samples + [end]) - start < 60, (start, samples, end)


def test_islice_of_an_infinite_stream(expander):
    inf = (_doc(i) for i in itertools.count())
    out = list(itertools.islice(expander.expand_iter(inf, chunk_size=8, max_length=32), 20))
    assert len(out) == 20
