"""The fp32 artifact's vocabulary-major head (``export/splade_onnx_export/head_layout.py``): ``[chunk x H] @ h^T`` per
slice and a max over the innermost axis. It must give the token-major graph's weights (same sums, same support) on
real splade-tiny with padded, mixed-length batches, raw or optimised, and the exporter must store it for fp32 only."""

from __future__ import annotations

import numpy as np
import pytest

from splade_onnx import Manifest


@pytest.fixture(scope="module")
def token_major_graph(tiny_checkpoint, tmp_path_factory) -> str:
    """The un-optimised token-major export: torch's slices as traced (``h @ w_head_i``, ReduceMax over axis 1)."""
    from splade_onnx_export import export

    out = tmp_path_factory.mktemp("tm") / "splade-tiny-raw"
    m = export(tiny_checkpoint, str(out), optimize=False, head_layout="token-major", source_name="rasyosef/splade-tiny")
    assert m.extra["head_layout"] == {"layout": "token-major", "chunks": 15, "chunk_columns": 2035}
    return str(out)


def _feeds(tokenizer_dir: str, texts, seq: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(f"{tokenizer_dir}/tokenizer.json")
    tok.enable_truncation(max_length=seq)
    tok.enable_padding()
    enc = tok.encode_batch(list(texts))
    ids = np.array([e.ids for e in enc], np.int64)
    return {
        "input_ids": ids,
        "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
        "token_type_ids": np.zeros_like(ids),
    }


def test_vocab_major_equals_token_major(token_major_graph, scifact_texts, tmp_path):
    import onnx
    from splade_onnx_export.graph import run_onnx
    from splade_onnx_export.head_layout import vocab_major_head

    src = f"{token_major_graph}/model.onnx"
    dst = str(tmp_path / "vm.onnx")
    info = vocab_major_head(src, dst)
    assert info == {"layout": "vocab-major", "chunks": 15, "chunk_columns": 2035}
    g = onnx.load(dst).graph
    heads = [n for n in g.node if n.op_type == "MatMul" and n.input[0].startswith("w_head_vm_")]
    assert len(heads) == 15 and not any(n.input[1].startswith("w_head_") for n in g.node if len(n.input) > 1)
    for batch in (scifact_texts[:1], scifact_texts[40:47], scifact_texts[-32:]):  # 1, 7 and 32 texts, padded
        feeds = _feeds(token_major_graph, batch, 256)
        a, b = run_onnx(src, feeds), run_onnx(dst, feeds)
        np.testing.assert_array_equal(a > 0, b > 0)
        assert float(np.max(np.abs(a - b))) <= 1e-5
        assert int(np.sum(a > 0)) >= 20 * len(batch)  # real vectors, not all zero


def test_optimised_artifacts_agree(tiny_artifact, tiny_token_major_artifact, scifact_texts):
    from splade_onnx_export.graph import run_onnx

    assert Manifest.read(tiny_token_major_artifact).extra["head_layout"]["layout"] == "token-major"
    for batch in (scifact_texts[:1], scifact_texts[100:107], scifact_texts[-32:]):
        feeds = _feeds(tiny_artifact, batch, 256)
        a = run_onnx(f"{tiny_token_major_artifact}/model.onnx", feeds)
        b = run_onnx(f"{tiny_artifact}/model.onnx", feeds)
        np.testing.assert_array_equal(a > 0, b > 0)
        assert float(np.max(np.abs(a - b))) <= 1e-5


def test_layout_choices_are_checked(tiny_checkpoint, tmp_path):
    from splade_onnx_export import export

    with pytest.raises(ValueError, match="head_layout"):
        export(tiny_checkpoint, str(tmp_path / "a"), head_layout="columns")
    with pytest.raises(ValueError, match="token-major"):
        export(tiny_checkpoint, str(tmp_path / "b"), head_layout="vocab-major", quantize="int8")
    with pytest.raises(ValueError, match="max pooling"):
        export(tiny_checkpoint, str(tmp_path / "c"), head_layout="vocab-major", pooling="sum")


def test_fp32_artifact_stores_vocab_major(tiny_artifact):
    """(The int8 artifact keeps token-major slices: test_int8.py checks its 15 quantised ``h @ w_head_i`` MatMuls.)"""
    import onnx

    assert Manifest.read(tiny_artifact).extra["head_layout"]["layout"] == "vocab-major"
    g = onnx.load(f"{tiny_artifact}/model.onnx", load_external_data=False).graph
    reds = [n for n in g.node if n.op_type == "ReduceMax" and n.input[0].startswith("head_vm/prod_")]
    assert len(reds) == 15
    assert [[list(a.ints) for a in n.attribute if a.name == "axes"] for n in reds] == [[[2]]] * 15
