"""Export-time graph optimisation and int8 quantisation, all with onnxruntime's own tools.

The artifact stores the already-optimised graph, so the runtime loads it with graph optimisations at ``basic`` (constant
folding only) and never spends load time on fusions:

1. ``onnxruntime.transformers.optimizer.optimize_model`` (python fusions: EmbedLayerNormalization, Attention,
   SkipLayerNormalization, BiasGelu) where the architecture is one it knows;
2. an onnxruntime session at ``ORT_ENABLE_EXTENDED`` with ``optimized_model_filepath`` bakes the remaining
   hardware-independent fusions into the file (``ORT_ENABLE_ALL`` would add layout transforms tied to this CPU);
3. for int8, ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per-channel, dynamic uint8 activations) on the
   optimised fp32 graph, then step 2 again, which fuses DynamicQuantizeLinear + MatMulInteger + scale into
   ``DynamicQuantizeMatMul`` so the int32 ``[tokens x vocab]`` product is never materialised.

The fused ops live in the ``com.microsoft`` domain: the manifest records the onnxruntime version that wrote them.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

log = logging.getLogger("splade_onnx_export")

# model_type values of onnxruntime.transformers.optimizer whose fusions match these Hugging Face architectures.
_ORT_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "distilbert": "bert",
    "electra": "bert",
}

QUANTIZE_CHOICES = ("int8",)


def _bake(src: str, dst: str, level: str = "extended") -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    so.optimized_model_filepath = dst
    ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def optimize_graph(src: str, dst: str, config: Any) -> Dict[str, Any]:
    """Write an onnxruntime-optimised copy of ``src`` to ``dst``; returns what was done (for the manifest)."""
    import onnx

    info: Dict[str, Any] = {"tool": "onnxruntime", "level": "extended", "fusions": {}}
    model_type = _ORT_MODEL_TYPES.get(str(getattr(config, "model_type", "")))
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        stage = src
        if model_type is not None:
            try:
                from onnxruntime.transformers.optimizer import optimize_model

                heads = int(getattr(config, "num_attention_heads", 0) or 0)
                hidden = int(getattr(config, "hidden_size", 0) or 0)
                opt = optimize_model(src, model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=0)
                info["fusions"] = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
                stage = os.path.join(tmp, "fused.onnx")
                opt.save_model_to_file(stage)
                info["transformers_optimizer"] = model_type
            except Exception as e:  # noqa: BLE001 - fusions are an optimisation; the baked session below still helps
                log.warning("onnxruntime transformer fusions failed (%s: %s); continuing without them",
                            type(e).__name__, e)
                stage = src
        _bake(stage, dst, "extended")
    onnx.checker.check_model(dst) if os.path.getsize(dst) < (1 << 31) else None
    return info


def quantize_int8(src: str, dst: str, *, per_channel: bool = True) -> Dict[str, Any]:
    """Dynamic int8 quantisation of ``src`` (an optimised fp32 graph) into ``dst``, with fusions baked in."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        q = os.path.join(tmp, "q.onnx")
        quantize_dynamic(
            src, q, weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=False,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # outputs of com.microsoft fused ops
        )
        _bake(q, dst, "extended")
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weights": "int8, per-channel" if per_channel else "int8, per-tensor",
        "activations": "uint8, dynamic per-tensor",
        "ops": ["MatMul", "Attention"],
    }




__all__ = ["optimize_graph", "quantize_int8", "int8_agreement", "QUANTIZE_CHOICES"]


def int8_agreement(got, ref, k: int = 20) -> Dict[str, Any]:
    """How closely int8 vectors follow the fp32 torch reference: max |diff|, top-k token overlap, support Jaccard."""
    import numpy as np

    overlaps, jaccards = [], []
    for g, r in zip(got, ref):
        kk = int(min(k, np.count_nonzero(r))) or 1
        tg = set(np.argsort(-g, kind="stable")[:kk].tolist())
        tr = set(np.argsort(-r, kind="stable")[:kk].tolist())
        overlaps.append(len(tg & tr) / kk)
        sg, sr = g > 0, r > 0
        union = int(np.count_nonzero(sg | sr)) or 1
        jaccards.append(int(np.count_nonzero(sg & sr)) / union)
    return {
        "texts": int(len(ref)),
        "max_abs_error": float(np.max(np.abs(got - ref))),
        "mean_abs_error_on_support": float(np.mean(np.abs(got - ref)[ref > 0])) if np.any(ref > 0) else 0.0,
        f"top{k}_overlap_mean": float(np.mean(overlaps)),
        f"top{k}_overlap_min": float(np.min(overlaps)),
        "support_jaccard_mean": float(np.mean(jaccards)),
    }
