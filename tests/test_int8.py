"""int8 artifacts (``export(..., quantize="int8")``) and the logits memory budget of the run loop."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


@pytest.fixture(scope="module")
def int8_artifact(tiny_checkpoint, tmp_path_factory) -> str:
    from splade_onnx_export import export

    out = tmp_path_factory.mktemp("int8") / "splade-tiny-int8"
    export(tiny_checkpoint, str(out), quantize="int8", source_name="rasyosef/splade-tiny")
    return str(out)


def _dense(vecs, vocab):
    d = np.zeros((len(vecs), vocab), np.float32)
    for i, v in enumerate(vecs):
        d[i, v.indices] = v.values
    return d


def test_int8_manifest_and_graph(int8_artifact):
    import onnx

    from splade_onnx import Manifest

    m = Manifest.read(int8_artifact)
    q = m.quantization
    assert q and q["weights"].startswith("int8")
    agree = q["agreement_with_torch_fp32"]
    assert agree["top20_overlap_mean"] >= 0.8
    assert q["fp32_graph_parity"] <= 1e-4  # the fp32 graph it was made from passed parity first
    ops = {n.op_type for n in onnx.load(f"{int8_artifact}/model.onnx").graph.node}
    # the quantised head GEMM is fused: no int32 [tokens x vocab] tensor and no separate scale pass
    assert "DynamicQuantizeMatMul" in ops and "MatMulInteger" not in ops


def test_int8_vectors_close_to_fp32(int8_artifact, tiny_artifact, scifact_texts):
    """Tolerance, stated honestly: int8 weights differ by up to ~0.7 in value (fp32 parity is 1e-4); what holds is
    the ranking of each vector's heaviest tokens: >= 80% of the top-10 tokens agree on average, >= 50% for every
    text, and the support overlaps >= 60% (Jaccard). Retrieval quality: benchmarks/quality.py (SciFact nDCG@10)."""
    from splade_onnx import Expander

    texts = scifact_texts[::8]
    warnings.simplefilter("ignore")
    a = Expander(tiny_artifact)
    b = Expander(int8_artifact)
    fa = _dense(a.encode_documents(texts), a.vocab_size)
    fb = _dense(b.encode_documents(texts), b.vocab_size)
    overlaps, jacc = [], []
    for x, y in zip(fa, fb, strict=True):
        k = min(10, int(np.count_nonzero(x)))
        overlaps.append(len(set(np.argsort(-x)[:k]) & set(np.argsort(-y)[:k])) / max(k, 1))
        jacc.append(np.count_nonzero((x > 0) & (y > 0)) / max(1, np.count_nonzero((x > 0) | (y > 0))))
    assert np.mean(overlaps) >= 0.8 and min(overlaps) >= 0.5, (np.mean(overlaps), min(overlaps))
    assert np.mean(jacc) >= 0.6
    assert np.max(np.abs(fa - fb)) < 1.5


def _feeds(tokenizer_path, texts, max_length=256):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    tok.enable_truncation(max_length)
    tok.enable_padding()
    enc = tok.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in enc], np.int64)
    mask = np.asarray([e.attention_mask for e in enc], np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _run(path, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run(None, {k: v for k, v in feeds.items() if k in names})[0]


def test_smoothing_is_exact_in_fp32(tiny_token_major_artifact, scifact_texts, tmp_path):
    """The graph quantize_int8 quantises, smoothed (scaled / centred inputs, compensated in weights, layer norms and
    biases) but not yet quantised, computes what the fp32 graph does on real text it was not calibrated on."""
    import onnx
    from splade_onnx_export.smoothing import smooth_activations

    src = f"{tiny_token_major_artifact}/model.onnx"
    dst = str(tmp_path / "smoothed.onnx")
    info = smooth_activations(src, dst, _calibration(tiny_token_major_artifact))
    changed = [s for s in info["sites"] if s["alpha"] is not None or s["shift"] is not None]
    assert len(changed) >= 5, info["sites"]  # it did something: encoder inputs scaled, the head's input centred
    assert any(s["shift"] for s in changed) and any(s["applied_in"] == "Mul" for s in changed)
    assert info["fp32_max_abs_change"] <= 1e-5
    assert "Mul" in {n.op_type for n in onnx.load(dst, load_external_data=False).graph.node}
    texts = scifact_texts[::6]
    feeds = _feeds(f"{tiny_token_major_artifact}/tokenizer.json", texts)
    a, b = _run(src, feeds), _run(dst, feeds)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def _calibration(artifact):
    from splade_onnx_export.int8 import default_calibration_feeds

    feeds = default_calibration_feeds(f"{artifact}/model.onnx")
    assert feeds and len(feeds) >= 10
    return feeds


def test_int8_head_stays_quantised(int8_artifact):
    """All 15 MLM-head slices (88% of the FLOPs) are int8 GEMMs; Attention weights are per-tensor; only the head
    transform's small MatMul is fp32."""
    import onnx
    from onnx import numpy_helper

    from splade_onnx import Manifest

    graph = onnx.load(f"{int8_artifact}/model.onnx").graph
    inits = {t.name: t for t in graph.initializer}
    quantised = {"MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
    head = [n for n in graph.node if any(i.startswith("w_head") for i in n.input[1:2])]
    assert len(head) == 15 and all(n.op_type in quantised for n in head), [(n.op_type, n.input[1]) for n in head]
    float_matmuls = [n.name for n in graph.node if n.op_type == "MatMul"]
    q = Manifest.read(int8_artifact).quantization
    assert float_matmuls == q["fp32_nodes"] == ["/mlm/cls/predictions/transform/dense/MatMul"]
    attention = [n for n in graph.node if n.op_type == "QAttention"]
    assert len(attention) == 2
    for n in attention:  # input 4: the weight scale, one value (per tensor)
        assert numpy_helper.to_array(inits[n.input[4]]).size == 1
    assert q["smoothing"]["fp32_max_abs_change"] <= 1e-5


def test_rows_per_run_respects_the_budget():
    from splade_onnx.encode.batching import rows_per_run

    vocab = 30522
    for budget_mb in (1, 16, 128, 1024):
        budget = budget_mb << 20
        for seq in (1, 7, 64, 256, 512, 8192):
            for batch in (1, 3, 32, 1000):
                rows = rows_per_run(seq, vocab, budget, batch)
                assert 1 <= rows <= batch
                # a run never holds more than the budget of [rows x seq x vocab] floats, unless one row alone is over
                assert rows == 1 or rows * seq * vocab * 4 <= budget
                # and it is not needlessly small
                assert rows == batch or (rows + 1) * seq * vocab * 4 > budget


def test_budget_does_not_change_vectors(tiny_artifact, scifact_texts):
    from splade_onnx import Expander

    warnings.simplefilter("ignore")
    texts = scifact_texts[::20]
    one_row = Expander(tiny_artifact, logits_budget_mb=1)  # 1 text per run
    big = Expander(tiny_artifact, logits_budget_mb=4096)  # whole batch in one run
    for x, y in zip(one_row.encode_documents(texts), big.encode_documents(texts), strict=True):
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_allclose(x.values, y.values, atol=1e-5)
