"""The fp16 variant of an exported graph: weights and compute in float16, inputs and ``sparse_weights`` kept
float32.

Post-processing on the written ``model.onnx`` (after the fp32 graph passed its parity check), so it composes
with any exporter/optimiser change. Made for the CUDA provider (tensor cores, half the weight memory); it runs
on CPU too (slower: onnxruntime's CPU kernels upcast many fp16 ops). Its parity with the torch fp32 reference
is looser than fp32: ``FP16_TOLERANCE`` by default, and the measured error is recorded in the manifest.
"""

from __future__ import annotations

import os
from typing import Any, Dict

# max |fp16 graph - torch fp32| allowed on the parity texts. SPLADE weights are log1p(relu(logits)) ~ 0..4;
# fp16 has 11 significant bits (~1e-3 relative), accumulated over the layers: a few 1e-2 absolute is the
# expected scale.
FP16_TOLERANCE = 0.05


def convert_fp16(src: str, dst: str) -> Dict[str, Any]:
    """Convert ``src`` (fp32 ONNX) to ``dst`` in float16, keeping the float32 graph inputs/outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(src)
    # keep_io_types: the runtime feeds int64 ids/mask and reads float32 weights exactly as with the fp32
    # graph. op_block_list: ops whose fp16 kernels lose too much (log1p of large logits, reductions) stay
    # float32. (onnxruntime's fused LayerNorm/SkipLayerNorm/Attention kernels take fp16 and accumulate in fp32
    # themselves.)
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST

    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | {"Log", "Log1p", "Softplus", "ReduceMax", "ReduceSum"})
    fp16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    onnx.save(fp16, dst)
    return {
        "precision": "fp16",
        "kept_float32_ops": "onnxruntime DEFAULT_OP_BLOCK_LIST + Log, Log1p, Softplus, ReduceMax, ReduceSum",
        "bytes": os.path.getsize(dst),
        "fp32_bytes": os.path.getsize(src),
    }


__all__ = ["FP16_TOLERANCE", "convert_fp16"]
