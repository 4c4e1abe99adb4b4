"""Every seed architecture exports with the fused head and matches the torch reference (1e-4), run by the runtime.

Random-init models of the real configuration shapes (tests/model_configs.py: real vocab, special ids, positions,
layer types; depth/width shrunk for CI). Korean: a byte-level BPE tokenizer trained here on belebele-ko text.
Also: the activation x pooling grid on real splade-tiny, OpenSearch's special-token zeroing, and a
sentence-transformers SparseEncoder repo whose SpladePooling config decides the head.
"""

from __future__ import annotations

import json
import os
import shutil

import model_configs as mc
import numpy as np
import pytest
from conftest import doc_text, read_jsonl
from helpers import make_random_checkpoint
from splade_onnx_export import export, splade_reference
from test_parity import assert_parity

from splade_onnx import Expander
from splade_onnx.artifact.manifest import Manifest


def _reference(ckpt, texts, max_length, batch_size=8, **kw):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    # [batch x seq x vocab] float32 logits and their temporaries: keep batches small for the 50k/250k vocabularies
    return splade_reference(model, tok, texts, max_length=max_length, batch_size=batch_size, **kw)


@pytest.fixture(scope="module")
def korean_texts(datasets_dir):
    docs = [doc_text(d) for d in read_jsonl(datasets_dir / "belebele-ko" / "corpus.jsonl")]
    qs = [doc_text(d) for d in read_jsonl(datasets_dir / "belebele-ko" / "queries.jsonl", limit=200)]
    docs.sort(key=len)
    joined = [" ".join(docs[-i - 5 : -i - 1]) for i in range(0, 16, 4)]  # ~300-450 tokens: past the local window
    return docs[:: max(1, len(docs) // 24)][:24] + qs[::25] + joined


@pytest.fixture(scope="module")
def korean_tokenizer(datasets_dir, tmp_path_factory):
    """Byte-level BPE with ModernBERT-style specials trained on belebele-ko passages and questions. Asked for 50000
    tokens; the ~460 KB of text allows ~26.6k merges, so the model keeps vocab 50000 / 49999 with the rest unused."""
    dest = str(tmp_path_factory.mktemp("ko-tokenizer"))
    ko = datasets_dir / "belebele-ko"
    info = mc.train_tokenizer(dest, [str(ko / "corpus.jsonl"), str(ko / "queries.jsonl")], vocab_size=50000)
    assert 20000 < info["vocab_size"] <= 50000, info
    assert info["special_ids"] == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    print(f"belebele-ko BPE tokenizer: {info['vocab_size']} tokens from {info['texts']} texts")
    return dest


@pytest.mark.parametrize("shape", ["pixie", "korean-neural-sparse"])
def test_modernbert_korean_parity(shape, korean_tokenizer, korean_texts, tmp_path):
    """ModernBERT (global + sliding-window layers, RoPE, no token types, decoder(head(h)) replaced by the fused
    head) on Korean belebele text, padded batches, lengths beyond the 128-token local window."""
    cfg = mc.pixie_splade_preview() if shape == "pixie" else mc.korean_neural_sparse_v1()
    assert cfg.layer_types == ["full_attention", "sliding_attention", "sliding_attention", "full_attention"]
    ckpt = make_random_checkpoint(str(tmp_path / "ckpt"), cfg, korean_tokenizer, seed=3, head_bias_shift=-0.6)
    name = "telepix/PIXIE-Splade-Preview" if shape == "pixie" else "sewoong/korean-neural-sparse-encoder-v1"
    m = export(ckpt, str(tmp_path / "art"), source_name=name)
    assert m.architecture == "modernbert" and m.model_class == "ModernBertForMaskedLM"
    assert m.inputs == ["input_ids", "attention_mask"]  # ModernBERT has no token_type_ids
    assert m.vocab_size == cfg.vocab_size and m.max_length["model"] == 8192
    assert m.parity["max_abs_error"] <= 1e-4
    assert m.extra["attn_implementation"] in ("eager", "sdpa")
    if shape == "pixie":
        assert m.max_length == {"query": 64, "document": 8192, "model": 8192}  # registry defaults
        assert m.zeroed_token_ids == []
    else:  # registry: the card drops the special tokens' weights
        assert m.max_length == {"query": 64, "document": 256, "model": 8192}
        assert m.zeroed_token_ids == [0, 1, 2, 3, 4]
        assert m.extra["head"]["zeroed_token_ids"] == "registry:sewoong/korean-neural-sparse-encoder-v1"
    e = Expander(str(tmp_path / "art"), batch_size=6)
    lengths = [len(e.tokenizer.encode(t).ids) for t in korean_texts]
    assert max(lengths) > 200 and min(lengths) < 40, (min(lengths), max(lengths))  # sliding window really used
    ref = _reference(ckpt, korean_texts, 512, batch_size=2, zeroed_token_ids=m.zeroed_token_ids)
    with pytest.warns(UserWarning, match="1 of"):
        vecs = e.expand(korean_texts, max_length=512)
    assert_parity(vecs, ref)
    assert np.mean([v.nnz for v in vecs]) > 10
    if m.zeroed_token_ids:
        assert not any(set(v.indices.tolist()) & set(m.zeroed_token_ids) for v in vecs)
    n_tok = e.tokenizer.get_vocab_size(with_added_tokens=True)
    in_vocab = [i for v in vecs for i in v.indices.tolist() if i < n_tok][:50]
    assert in_vocab and all(e.vocab[i] for i in in_vocab)  # Korean token strings for the explanations


def test_xlm_roberta_parity(datasets_dir, scifact_texts, korean_texts, tmp_path):
    """XLM-R shape: vocab 250002, 514 positions counted from padding_idx (1) + 1, no token types (type_vocab 1)."""
    tok_dir = str(tmp_path / "tok")
    files = [str(datasets_dir / "belebele-ko" / "queries.jsonl")]
    info = mc.train_tokenizer(
        tok_dir, files, vocab_size=4000, kind="unigram", specials=mc.XLMR_SPECIALS, model_max_length=512
    )
    assert info["special_ids"] == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    cfg = mc.xlm_roberta()
    ckpt = make_random_checkpoint(str(tmp_path / "ckpt"), cfg, tok_dir, seed=5, head_bias_shift=-0.6)
    m = export(ckpt, str(tmp_path / "art"))
    assert m.architecture == "xlm-roberta" and m.vocab_size == 250002
    assert m.inputs == ["input_ids", "attention_mask"] and m.pad_token_id == 1
    assert m.max_length["model"] == 512  # 514 positions - (padding_idx + 1)
    texts = scifact_texts[::48] + korean_texts[::6]
    ref = _reference(ckpt, texts, 160, batch_size=1)
    with pytest.warns(UserWarning, match="truncated"):
        vecs = Expander(str(tmp_path / "art"), batch_size=4).expand(texts, max_length=160)
    assert_parity(vecs, ref)


def test_distilbert_opensearch_v3_zeroes_special_tokens(tiny_checkpoint, scifact_texts, tmp_path):
    """OpenSearch doc-v3-distill shape: DistilBERT, log1p(log1p(relu)), special tokens zeroed, all from the
    registry entry of its id; the runtime follows the manifest."""
    ckpt = make_random_checkpoint(
        str(tmp_path / "ckpt"), mc.distilbert(), tiny_checkpoint, seed=2, head_bias_shift=-0.3
    )
    name = "opensearch-project/opensearch-neural-sparse-encoding-doc-v3-distill"
    m = export(ckpt, str(tmp_path / "art"), source_name=name)
    assert m.activation == "log1p_log1p_relu" and m.pooling == "max"
    assert m.zeroed_token_ids == [0, 100, 101, 102, 103]  # [PAD] [UNK] [CLS] [SEP] [MASK]
    assert m.max_length["document"] == 512 and m.extra["head"]["activation"] == f"registry:{name}"
    texts = scifact_texts[::16]
    ref = _reference(ckpt, texts, 512, activation="log1p_log1p_relu", zeroed_token_ids=m.zeroed_token_ids)
    vecs = Expander(str(tmp_path / "art")).expand(texts, max_length=512)
    assert_parity(vecs, ref)
    assert not any(set(v.indices.tolist()) & {0, 100, 101, 102, 103} for v in vecs)
    plain = _reference(ckpt, texts[:4], 512, activation="log1p_log1p_relu")
    assert plain[:, 101].max() > 0, "the test must have [CLS] weights for zeroing to remove"


@pytest.mark.parametrize("activation", ["log1p_relu", "log1p_log1p_relu"])
@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_activation_pooling_grid_on_splade_tiny(activation, pooling, tiny_checkpoint, scifact_texts, tmp_path):
    m = export(tiny_checkpoint, str(tmp_path / "art"), activation=activation, pooling=pooling)
    assert (m.activation, m.pooling) == (activation, pooling)
    assert m.extra["head"]["activation"] == "argument"
    texts = scifact_texts[::30]
    ref = _reference(tiny_checkpoint, texts, 256, activation=activation, pooling=pooling)
    with pytest.warns(UserWarning, match="truncated"):
        vecs = Expander(str(tmp_path / "art"), batch_size=3).expand(texts, max_length=256)
    assert_parity(vecs, ref, tol=1e-4 if pooling == "max" else 1e-4 * 256)
    if pooling == "sum":  # sum pooling grows with length; the relative error is what 1e-4 bounds
        for v, r in zip(vecs, ref, strict=True):
            d = v.to_dense(ref.shape[1])
            assert np.max(np.abs(d - r)) <= 1e-4 * max(1.0, float(r.max()))


def _st_repo(dest, ckpt, *, pooling, st_activation, legacy=False):
    """A sentence-transformers SparseEncoder repo layout: MLM weights at the root (module path ""), SpladePooling
    config in 1_SpladePooling/config.json (the layout ST 5.x saves, e.g. PIXIE-Splade-Preview)."""
    shutil.copytree(ckpt, dest)
    mlm_type = (
        "sentence_transformers.sparse_encoder.models.MLMTransformer"
        if legacy
        else "sentence_transformers.sparse_encoder.modules.mlm_transformer.MLMTransformer"
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": mlm_type},
        {
            "idx": 1,
            "name": "1",
            "path": "1_SpladePooling",
            "type": "sentence_transformers.sparse_encoder.models.SpladePooling",
        },
    ]
    with open(os.path.join(dest, "modules.json"), "w") as f:
        json.dump(modules, f)
    with open(os.path.join(dest, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 300, "do_lower_case": False}, f)
    os.makedirs(os.path.join(dest, "1_SpladePooling"))
    key = "word_embedding_dimension" if legacy else "embedding_dimension"
    with open(os.path.join(dest, "1_SpladePooling", "config.json"), "w") as f:
        json.dump({"pooling_strategy": pooling, "activation_function": st_activation, key: 30522}, f)
    return dest


@pytest.mark.parametrize(
    "pooling,st_activation,expected,legacy",
    [
        ("max", "relu", "log1p_relu", True),  # ST 'relu' = SPLADE's log(1 + relu(x))
        ("sum", "log1p_relu", "log1p_log1p_relu", False),  # ST 'log1p_relu' = OpenSearch v3's log(1 + log(1 + relu))
    ],
)
def test_sentence_transformers_repo_decides_the_head(
    pooling, st_activation, expected, legacy, tiny_checkpoint, scifact_texts, tmp_path
):
    repo = _st_repo(str(tmp_path / "st"), tiny_checkpoint, pooling=pooling, st_activation=st_activation, legacy=legacy)
    m = export(repo, str(tmp_path / "art"))
    assert (m.activation, m.pooling) == (expected, pooling)
    assert m.extra["head"]["pooling"] == "sentence-transformers SpladePooling config"
    assert m.extra["head"]["sentence_transformers"]["st_activation"] == st_activation
    assert m.max_length["document"] == 300  # sentence_bert_config.json max_seq_length
    texts = scifact_texts[::40]
    ref = _reference(tiny_checkpoint, texts, 256, activation=expected, pooling=pooling)
    with pytest.warns(UserWarning):
        vecs = Expander(str(tmp_path / "art")).expand(texts, max_length=256)
    assert_parity(vecs, ref, tol=1e-4 if pooling == "max" else 3e-3)
    # an explicit argument still wins over the repo's config
    m2 = export(repo, str(tmp_path / "art2"), activation="log1p_relu", pooling="max")
    assert (m2.activation, m2.pooling) == ("log1p_relu", "max")
    assert Manifest.read(str(tmp_path / "art2")).extra["head"]["activation"] == "argument"
