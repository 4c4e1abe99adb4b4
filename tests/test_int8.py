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
    for x, y in zip(fa, fb):
        k = min(10, int(np.count_nonzero(x)))
        overlaps.append(len(set(np.argsort(-x)[:k]) & set(np.argsort(-y)[:k])) / max(k, 1))
        jacc.append(np.count_nonzero((x > 0) & (y > 0)) / max(1, np.count_nonzero((x > 0) | (y > 0))))
    assert np.mean(overlaps) >= 0.8 and min(overlaps) >= 0.5, (np.mean(overlaps), min(overlaps))
    assert np.mean(jacc) >= 0.6
    assert np.max(np.abs(fa - fb)) < 1.5


def test_rows_per_run_respects_the_budget():
    from splade_onnx.expander import rows_per_run

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
    for x, y in zip(one_row.encode_documents(texts), big.encode_documents(texts)):
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_allclose(x.values, y.values, atol=1e-5)
