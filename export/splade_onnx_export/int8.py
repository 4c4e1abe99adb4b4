"""The int8 variant: dynamic int8 quantisation of the optimised fp32 graph, with onnxruntime's own tools.

Smoothing/centring of the quantised inputs first (exact in fp32, chosen on calibration texts;
``smoothing.py``), then ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per-channel for MatMul
and per-tensor for Attention, dynamic uint8 activations; the head transform's small MatMul stays fp32), then
onnxruntime's extended optimisation again (``graph.write_optimized``), which fuses DynamicQuantizeLinear +
MatMulInteger + scale into ``DynamicQuantizeMatMul`` so the int32 ``[tokens x vocab]`` product is never
materialised.

The int8 graph is not held to the fp32 tolerance: its agreement with the torch reference (``int8_agreement``)
is recorded in the manifest, and its retrieval quality is measured in benchmarks/.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from splade_onnx.build.formula import PARITY_TEXTS

from .graph import LAYER_NORM_AFFINE, Feeds, write_optimized
from .smoothing import smooth_activations

# ops between the head transform's MatMul and its layer norm: a fused or an elementwise activation
_TRANSFORM_ACTIVATION_OPS = (
    "BiasGelu",
    "Gelu",
    "FastGelu",
    "QuickGelu",
    "Add",
    "Mul",
    "Div",
    "Erf",
    "Tanh",
    "Relu",
    "Sigmoid",
)


def split_feeds(feeds: Feeds) -> List[Feeds]:
    """A padded batch of feeds -> one unpadded [1, n] feed per text (dynamic ranges are per run; padding
    excluded)."""
    mask = np.asarray(feeds["attention_mask"])
    out = []
    for r in range(mask.shape[0]):
        keep = mask[r] > 0
        if keep.any():
            out.append({k: np.ascontiguousarray(np.asarray(v)[r][keep][None]) for k, v in feeds.items()})
    return out


def default_calibration_feeds(model_path: str, max_length: int = 256) -> Optional[List[Feeds]]:
    """The parity texts through the ``tokenizer.json`` beside ``model_path`` (the exporter writes it there
    first), one unpadded feed per text; None where there is no tokenizer.json."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "tokenizer.json")
    if not os.path.isfile(path):
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length)
    tok.no_padding()
    out = []
    for e in tok.encode_batch(list(PARITY_TEXTS)):
        ids = np.asarray([e.ids], np.int64)
        out.append(
            {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.asarray([e.type_ids], np.int64),
            }
        )
    return out


def head_transform_matmul(path: str) -> Optional[str]:
    """The MatMul of the MLM head's transform (dense -> activation -> LayerNorm -> decoder), found by walking
    back from the decoder slices' input (``w_head*`` weights); None where the graph has no such chain."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    matmuls = [n for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1]
    heads = [n for n in matmuls if n.input[1].startswith("w_head")]
    if not heads or len({n.input[0] for n in heads}) != 1:
        return None
    n = producer.get(heads[0].input[0])
    # rows copied from the layer norm (the head's padding rows)
    while n is not None and n.op_type in ("Where", "Gather", "GatherElements"):
        n = producer.get(n.input[1] if n.op_type == "Where" else n.input[0])
    if n is None or n.op_type not in LAYER_NORM_AFFINE:
        return None
    n = producer.get(n.input[0])
    for _ in range(8):  # the activation: fused (BiasGelu, Gelu, FastGelu) or a few elementwise ops
        if n is None:
            return None
        if n.op_type == "MatMul":
            return n.name if len(n.input) > 1 and n.input[1] in inits else None
        if n.op_type not in _TRANSFORM_ACTIVATION_OPS:
            return None
        data = [i for i in n.input if i and i not in inits]
        n = producer.get(data[0]) if data else None
    return None


def quantize_int8(
    src: str,
    dst: str,
    *,
    per_channel: bool = True,
    calibration_feeds: Optional[Union[Feeds, Sequence[Feeds]]] = None,
    smooth: bool = True,
    fp32_nodes: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """Dynamic int8 quantisation of ``src`` (an optimised fp32 graph) into ``dst``, with fusions baked in.

    ``calibration_feeds``: a padded batch of graph feeds (the exporter's parity texts) or a list of per-text
    feeds; by default the built-in parity texts through the ``tokenizer.json`` beside ``src``. They choose the
    smoothing. MatMul weights are int8 per output channel (``per_channel``), Attention QKV weights int8 per
    tensor. ``fp32_nodes``: nodes left in fp32; by default the head transform's MatMul
    (``head_transform_matmul``): on splade-tiny it is 0.4% of the FLOPs and fp32 there cut the int8 error on
    SciFact documents by a fifth, its int8 error being mostly that of its own weights, which smoothing cannot
    help."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # outputs of com.microsoft fused ops
    if fp32_nodes is None:
        transform = head_transform_matmul(src)
        fp32_nodes = [transform] if transform else []
    info: Dict[str, Any] = {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weights": ("int8, per-channel" if per_channel else "int8, per-tensor")
        + " (MatMul); int8, per-tensor (Attention)",
        "activations": "uint8, dynamic per-tensor",
        "ops": ["MatMul", "Attention"],
        "fp32_nodes": list(fp32_nodes),
    }
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        stage = src
        if smooth:
            feeds = calibration_feeds
            per_text = split_feeds(feeds) if isinstance(feeds, dict) else feeds
            if per_text is None:
                per_text = default_calibration_feeds(src)
            stage = os.path.join(tmp, "smoothed.onnx")
            info["smoothing"] = smooth_activations(src, stage, per_text, skip=fp32_nodes)
        # two passes, as quantize_dynamic's per_channel is global: Attention with per-tensor weights
        # (onnxruntime's QAttention with per-column weight scales lost ~15x more accuracy), then MatMul with
        # per-channel ones
        q1 = os.path.join(tmp, "q_attention.onnx")
        q = os.path.join(tmp, "q.onnx")
        quantize_dynamic(
            stage,
            q1,
            weight_type=QuantType.QInt8,
            per_channel=False,
            reduce_range=False,
            op_types_to_quantize=["Attention"],
            nodes_to_exclude=list(fp32_nodes),
            extra_options=dict(extra),
        )
        quantize_dynamic(
            q1,
            q,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=False,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=list(fp32_nodes),
            extra_options=dict(extra),
        )
        write_optimized(q, dst, "extended")
    return info


def int8_agreement(got: np.ndarray, ref: np.ndarray, k: int = 20) -> Dict[str, Any]:
    """How closely int8 vectors follow the fp32 torch reference: max |diff|, top-k token overlap, support
    Jaccard."""
    overlaps, jaccards = [], []
    for g, r in zip(got, ref, strict=True):
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


__all__ = [
    "quantize_int8",
    "default_calibration_feeds",
    "split_feeds",
    "head_transform_matmul",
    "int8_agreement",
]
