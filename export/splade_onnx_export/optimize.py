"""Export-time graph optimisation with onnxruntime's own tools.

The artifact stores the already-optimised graph, so the runtime loads it with graph optimisations at ``basic``
(constant folding only) and never spends load time on fusions:

1. ``onnxruntime.transformers.optimizer.optimize_model`` (python fusions: EmbedLayerNormalization, Attention,
   SkipLayerNormalization, BiasGelu) where the architecture is one it knows;
2. an onnxruntime session at ``ORT_ENABLE_EXTENDED`` with ``optimized_model_filepath`` bakes the remaining
   hardware-independent fusions into the file (``graph.write_optimized``).

The int8 variant (``int8.py``) starts from this graph and bakes its own result the same way. The fused ops
live in the ``com.microsoft`` domain: the manifest records the onnxruntime version that wrote them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any, Dict

from .graph import write_optimized

log = logging.getLogger("splade_onnx_export")

# model_type values of onnxruntime.transformers.optimizer whose fusions match these Hugging Face
# architectures.
ORT_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "distilbert": "bert",
    "electra": "bert",
}


def optimize_graph(src: str, dst: str, config: Any) -> Dict[str, Any]:
    """Write an onnxruntime-optimised copy of ``src`` to ``dst``; returns what was done (for the manifest)."""
    import onnx

    info: Dict[str, Any] = {"tool": "onnxruntime", "level": "extended", "fusions": {}}
    model_type = ORT_MODEL_TYPES.get(str(getattr(config, "model_type", "")))
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        stage = src
        if model_type is not None:
            try:
                from onnxruntime.transformers.optimizer import optimize_model

                heads = int(getattr(config, "num_attention_heads", 0) or 0)
                hidden = int(getattr(config, "hidden_size", 0) or 0)
                opt = optimize_model(
                    src,
                    model_type=model_type,
                    num_heads=heads,
                    hidden_size=hidden,
                    opt_level=0,
                )
                info["fusions"] = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
                stage = os.path.join(tmp, "fused.onnx")
                opt.save_model_to_file(stage)
                info["transformers_optimizer"] = model_type
            except Exception as e:  # noqa: BLE001 - fusions are an optimisation; the baked session below still helps
                log.warning(
                    "onnxruntime transformer fusions failed (%s: %s); continuing without them",
                    type(e).__name__,
                    e,
                )
                stage = src
        write_optimized(stage, dst, "extended")
    if os.path.getsize(dst) < (1 << 31):
        onnx.checker.check_model(dst)
    return info


__all__ = ["ORT_MODEL_TYPES", "optimize_graph"]
