"""The GPU path: IO binding, the fp16 export variant, onnxruntime/onnxruntime-gpu detection, CUDA parity (skipped
with a clear reason where this onnxruntime has no CUDA provider)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from splade_onnx import Expander, doctor
from splade_onnx.doctor import installed_onnxruntime_distributions, onnxruntime_conflict
from splade_onnx.encode.batching import CUDA_LOGITS_BUDGET_MB, DEFAULT_LOGITS_BUDGET_MB
from splade_onnx.encode.session import NO_CUDA_REASON, cuda_available, with_cuda_defaults

TEXTS = ["aspirin lowers the risk of heart attack", "kidney stones " * 80, "a", "SPLADE 漢字 emoji \U0001f600"]
needs_cuda = pytest.mark.skipif(not cuda_available(), reason=NO_CUDA_REASON)


@pytest.fixture(scope="module")
def cpu(tiny_artifact):
    return Expander(tiny_artifact)


def _close(a, b, atol, same_support=False):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        dx, dy = x.to_dense(30522), y.to_dense(30522)
        assert np.max(np.abs(dx - dy)) <= atol
        if same_support:
            assert np.array_equal(dx > 0, dy > 0)


# ------------------------------------------------------------------ IO binding (runs on CPU too)
def test_io_binding_is_off_on_cpu_by_default_and_identical_when_on(tiny_artifact, cpu):
    assert cpu.io_binding is False
    bound = Expander(tiny_artifact, io_binding=True)
    assert bound.io_binding is True
    assert bound.expand(TEXTS, max_length=64) == cpu.expand(TEXTS, max_length=64)


# ------------------------------------------------------------------ CUDA defaults (checked on CPU too)
def test_cuda_provider_gets_tf32_off_unless_the_caller_sets_it():
    # onnxruntime's CUDA provider runs float32 MatMuls in TF32 by default: 3.9e-3 from the CPU on an H200, beyond the
    # fp32 artifact's 1e-4 contract; TF32 off gave 4e-6 and the same support
    assert with_cuda_defaults("CUDAExecutionProvider") == ("CUDAExecutionProvider", {"use_tf32": "0"})
    opts = {"device_id": 1}
    assert with_cuda_defaults(("CUDAExecutionProvider", opts)) == (
        "CUDAExecutionProvider",
        {"use_tf32": "0", "device_id": 1},
    )
    assert opts == {"device_id": 1}  # the caller's dict is not mutated
    assert with_cuda_defaults(("CUDAExecutionProvider", {"use_tf32": "1"}))[1]["use_tf32"] == "1"  # the caller wins
    assert with_cuda_defaults("CPUExecutionProvider") == "CPUExecutionProvider"
    assert with_cuda_defaults(("CPUExecutionProvider", {"x": 1})) == ("CPUExecutionProvider", {"x": 1})


def test_logits_budget_defaults_by_device(tiny_artifact, cpu):
    # CPU: 128 MB; a GPU wants whole batches (H200: 843 docs/s at batch 128 x 256 under 128 MB, 1,619 under 4,096)
    assert cpu.logits_budget_bytes == DEFAULT_LOGITS_BUDGET_MB << 20
    assert Expander(tiny_artifact, logits_budget_mb=64).logits_budget_bytes == 64 << 20
    if cuda_available():
        assert Expander(tiny_artifact, providers=["cuda"]).logits_budget_bytes == CUDA_LOGITS_BUDGET_MB << 20


# ------------------------------------------------------------------ fp16 export variant
@pytest.fixture(scope="module")
def fp16_artifact(tiny_checkpoint, tmp_path_factory):
    from splade_onnx_export import export

    out = tmp_path_factory.mktemp("fp16") / "splade-tiny-fp16"
    m = export(tiny_checkpoint, str(out), source_name="rasyosef/splade-tiny", precision="fp16")
    return str(out), m


def test_fp16_export_parity_recorded_and_within_tolerance(fp16_artifact, tiny_artifact):
    import os

    from splade_onnx_export.fp16 import FP16_TOLERANCE

    path, m = fp16_artifact
    q = m.quantization
    assert q["precision"] == "fp16"
    assert 0 < q["max_abs_error_vs_torch_fp32"] <= FP16_TOLERANCE  # fp16 is not bit-exact, and it is close
    assert q["fp32_graph_parity"] <= 1e-4

    def weight_bytes(folder: str) -> int:  # graph plus its external data file (model.onnx_data)
        return sum(
            os.path.getsize(os.path.join(folder, f))
            for f in ("model.onnx", "model.onnx_data")
            if os.path.exists(os.path.join(folder, f))
        )

    assert os.path.exists(os.path.join(path, "model.onnx_data"))
    assert weight_bytes(path) < 0.6 * weight_bytes(tiny_artifact)


def test_fp16_graph_runs_on_cpu_with_float32_io(fp16_artifact, cpu):
    path, _ = fp16_artifact
    e = Expander(path)
    got = e.expand(TEXTS, max_length=128)
    ref = cpu.expand(TEXTS, max_length=128)
    for g, r in zip(got, ref, strict=True):
        assert g.values.dtype == np.float32
        top_g = [t for t, _ in e.decode(g, 5)]
        top_r = [t for t, _ in cpu.decode(r, 5)]
        assert len(set(top_g) & set(top_r)) >= 4
    _close(got, ref, 0.05)


def test_unknown_precision_refused(tiny_checkpoint, tmp_path):
    from splade_onnx_export import export

    with pytest.raises(ValueError, match="precision"):
        export(tiny_checkpoint, str(tmp_path / "x"), precision="bf8")


# ------------------------------------------------------------------ onnxruntime + onnxruntime-gpu detection
def test_doctor_reports_what_is_installed():
    # doctor() must agree with the distributions actually installed: a conflict exactly when both wheels are there
    found = installed_onnxruntime_distributions()
    report = doctor()
    assert "CPUExecutionProvider" in report["providers"]
    assert (report["conflict"] is not None) == (len(found) > 1)
    assert (onnxruntime_conflict() is not None) == (len(found) > 1)


@pytest.mark.parametrize(
    "dists, conflict",
    [
        (["numpy", "onnxruntime", "tokenizers"], False),
        (["onnxruntime-gpu", "numpy"], False),
        (["onnxruntime", "onnxruntime-gpu"], True),
        (["onnxruntime", "onnxruntime_gpu"], True),  # wheel metadata may use underscores
        (["ONNXRuntime", "onnxruntime-directml"], True),
        (["onnxruntime-tools", "onnxruntime"], False),  # not a build of onnxruntime
    ],
)
def test_conflict_detection_on_a_given_distribution_list(dists, conflict, caplog):
    msg = onnxruntime_conflict(dists)
    assert (msg is not None) == conflict
    if conflict:
        assert "pip install --no-deps splade-onnx" in msg and "onnxruntime-gpu" in msg
        with caplog.at_level(logging.WARNING, logger="splade_onnx"):
            doctor(dists)
        assert any("several onnxruntime distributions" in r.getMessage() for r in caplog.records)


def test_cuda_request_without_cuda_falls_back_with_a_warning(tiny_artifact, caplog):
    if cuda_available():
        pytest.skip("this onnxruntime has CUDA: there is no fallback to see")
    with caplog.at_level(logging.WARNING, logger="splade_onnx"):
        e = Expander(tiny_artifact, providers=["cuda"])
    assert e.providers == ["CPUExecutionProvider"] and e.io_binding is False
    assert any("onnxruntime-gpu" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ on a GPU
@pytest.mark.gpu
@needs_cuda
def test_cuda_session_uses_io_binding_and_matches_cpu(tiny_artifact, cpu):
    g = Expander(tiny_artifact, providers=["cuda"])
    assert g.providers[0] == "CUDAExecutionProvider" and g.io_binding is True
    assert g.logits_budget_bytes == CUDA_LOGITS_BUDGET_MB << 20
    # the fp32 contract holds on CUDA (TF32 off by default): 1e-4 and the same support
    _close(g.expand(TEXTS, max_length=128), cpu.expand(TEXTS, max_length=128), 1e-4, same_support=True)
    off = Expander(tiny_artifact, providers=["cuda"], io_binding=False)
    assert off.expand(TEXTS, max_length=128) == g.expand(TEXTS, max_length=128)


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp16_matches_cpu_fp32(fp16_artifact, cpu):
    g = Expander(fp16_artifact[0], providers=["cuda"])
    _close(g.expand(TEXTS, max_length=128), cpu.expand(TEXTS, max_length=128), 0.05)


@pytest.mark.gpu
@needs_cuda
def test_cuda_scifact_parity(tiny_artifact, cpu, scifact_texts):
    g = Expander(tiny_artifact, providers=["cuda"], batch_size=64)
    for batch in (1, 7, 64):
        # 1e-4 everywhere; across 200 texts an entry within 1e-4 of zero may flip sign (seen on an H200), so the
        # support is held exactly on TEXTS only
        _close(g.expand(scifact_texts[:200], batch_size=batch), cpu.expand(scifact_texts[:200]), 1e-4)


@pytest.mark.gpu
@needs_cuda
def test_cuda_tf32_is_one_option_away(tiny_artifact, cpu):
    g = Expander(tiny_artifact, providers=[("CUDAExecutionProvider", {"use_tf32": "1"})])
    assert g.providers[0] == "CUDAExecutionProvider"
    _close(g.expand(TEXTS, max_length=128), cpu.expand(TEXTS, max_length=128), 0.02)  # TF32: ~4e-3 on an H200
