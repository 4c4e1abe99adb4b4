"""int8-exact artifacts (``export(..., quantize="int8-exact")``): an int8 screen of the head with a proven error bound,
exact fp32 recomputation of every entry that can be non-zero. The weights must be the fp32 artifact's, support
included, on real splade-tiny with padded batches and mixed lengths."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_parity import assert_parity

from splade_onnx import Expander, Manifest


@pytest.fixture(scope="module")
def exact_artifact(tiny_checkpoint, tmp_path_factory) -> str:
    from splade_onnx_export import export

    out = tmp_path_factory.mktemp("exact") / "splade-tiny-int8-exact"
    export(tiny_checkpoint, str(out), quantize="int8-exact", source_name="rasyosef/splade-tiny")
    return str(out)


def test_manifest_and_graph(exact_artifact):
    import onnx

    m = Manifest.read(exact_artifact)
    q = m.quantization
    assert q["scheme"] == "int8-exact" and q["exact"] is True and q["encoder"] == "fp32"
    assert q["support_equal_to_fp32_graph"] is True and q["max_abs_diff_vs_fp32_graph"] <= 1e-5
    assert m.parity["max_abs_error"] <= 1e-4 and m.parity["support_equal"]
    g = onnx.load(f"{exact_artifact}/model.onnx", load_external_data=False).graph
    ops = [n.op_type for n in g.node]
    # the head really is int8 (15 slices), and the exact path is in the graph: one output, as any artifact
    assert sum(op in ("DynamicQuantizeMatMul", "MatMulIntegerToFloat") for op in ops) == q["head_slices"] == 15
    assert {"TopK", "Gather", "ScatterElements"} <= set(ops)
    assert [o.name for o in g.output] == ["sparse_weights"]


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_same_weights_as_fp32_on_scifact(exact_artifact, tiny_artifact, scifact_texts, scifact_reference, batch_size):
    """240 SciFact documents of mixed lengths: the torch reference within 1e-4, and the fp32 artifact's support."""
    fp32 = Expander(tiny_artifact, batch_size=batch_size)
    exact = Expander(exact_artifact, batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = fp32.expand(scifact_texts, max_length=256)
        b = exact.expand(scifact_texts, max_length=256)
    assert_parity(b, scifact_reference)
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.indices, y.indices)
        worst = max(worst, float(np.max(np.abs(x.values - y.values), initial=0.0)))
    assert worst <= 1e-5
    print(f"int8-exact vs fp32, batch {batch_size}: identical support, max |diff| {worst:.2e}")


def _with_outputs(path: str, names):
    import onnx
    import onnxruntime as ort

    m = onnx.load(path)
    produced = {o for n in m.graph.node for o in n.output}
    assert set(names) <= produced, f"{set(names) - produced} not in the graph"
    for name in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_screen_prunes_and_the_recomputation_does_the_work(exact_artifact, tiny_artifact, scifact_texts):
    """On 32 long SciFact documents: every non-zero was a candidate, candidates are a few times the support (not the
    vocabulary), and the int8 maxima alone are visibly off the fp32 ones (so the exact pass is what makes it exact)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(f"{tiny_artifact}/tokenizer.json")
    tok.enable_truncation(256)
    enc = tok.encode_batch(scifact_texts[-32:])
    L = max(len(x.ids) for x in enc)
    ids = np.zeros((len(enc), L), np.int64)
    mask = np.zeros_like(ids)
    for i, x in enumerate(enc):
        ids[i, : len(x.ids)] = x.ids
        mask[i, : len(x.ids)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": 0 * ids}
    out, approx, cand = _with_outputs(f"{exact_artifact}/model.onnx", ["/Concat_1_output_0", "screen/candf"]).run(
        None, feeds
    )
    ref, true_max = _with_outputs(f"{tiny_artifact}/model.onnx", ["/Concat_1_output_0"]).run(None, feeds)
    support = (ref > 0).sum(1)
    assert np.all(cand[ref > 0] == 1)
    assert 1.0 < cand.sum(1).mean() / support.mean() < 10.0
    np.testing.assert_array_equal(out > 0, ref > 0)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    err = np.abs(approx - true_max)
    assert err.max() > 1e-2  # int8 error, far above fp32 rounding
    print(f"candidates/doc {cand.sum(1).mean():.0f} for support {support.mean():.0f}; int8 max error {err.max():.3f}")
