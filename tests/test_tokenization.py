"""The per-length truncating view of the shared tokenizer gives exactly what tokenizers' own truncation gives."""

from __future__ import annotations

import pytest
from conftest import doc_text, read_jsonl
from tokenizers import Tokenizer

from splade_onnx.encode.expander import TruncatingTokenizer


@pytest.fixture(scope="module")
def texts(datasets_dir):
    out = [doc_text(d) for d in read_jsonl(datasets_dir / "scifact" / "corpus.jsonl")]
    out += [doc_text(d) for d in read_jsonl(datasets_dir / "belebele-ko" / "corpus.jsonl", limit=300)]
    return out + ["a", "!!", "\u00e9 e\u0301 \u6f22\u5b57 \U0001f600 \x00 x", "[SEP] [CLS] hello " * 200]


@pytest.mark.parametrize("max_length", [2, 3, 16, 64, 256, 512])
def test_view_matches_tokenizers_truncation(tiny_artifact, texts, max_length):
    path = f"{tiny_artifact}/tokenizer.json"
    shared = Tokenizer.from_file(path)
    shared.no_truncation()
    ref = Tokenizer.from_file(path)
    ref.enable_truncation(max_length)
    view = TruncatingTokenizer(shared, max_length)
    got, want = view.encode_batch(texts), ref.encode_batch(texts)
    n_cut = 0
    for g, w in zip(got, want, strict=True):
        assert g.ids == w.ids and g.type_ids == w.type_ids and g.attention_mask == w.attention_mask
        assert g.special_tokens_mask == w.special_tokens_mask
        assert bool(g.overflowing) == bool(w.overflowing)
        n_cut += bool(w.overflowing)
    assert view.encode(texts[0]).ids == want[0].ids
    assert 0 < n_cut < len(texts) or max_length <= 3  # both kinds of text really occur
    assert shared.truncation is None  # the shared tokenizer is never mutated
