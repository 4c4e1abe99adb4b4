"""The int8-exact variant, exact fp32 SPLADE weights at int8 speed: an int8 *screen* of the MLM head, then
exact fp32 on the few survivors.

On splade-tiny the head's ``[tokens x H] @ [H x vocab]`` product is 88% of the FLOPs, yet a document keeps
only a few hundred of its 30,522 weights. ``export(..., quantize="int8-exact")`` rewrites the optimised fp32
graph so that:

1. the **encoder stays fp32**, so the head input ``h`` (``[B, S, H]``, padded rows already copies of a real
   token) is exactly that of the fp32 graph;
2. the head slices run as dynamic **int8** (uint8 activations per tensor, int8 weights per column), max-pooled
   over tokens: ``m~[b, v]``, an approximation of the true ``m[b, v] = max_t h[b, t] . w[v]``;
3. a **proven bound** on the error of every entry, computed in the graph,

       |h.w - h^.w^| <= ||h_t|| ||w_v - w^_v|| + ||h_t - h^_t|| ||w^_v||
                     <= max_t ||h_t|| * D[v]   +  sqrt(H) * s_x / 2 * N[v]        (Cauchy-Schwarz, twice)

   with ``D[v] = ||w_v - w^_v||`` and ``N[v] = ||w^_v||`` computed here from the stored int8 weights and
   ``s_x`` the per-tensor activation scale, computed from ``h`` as DynamicQuantizeLinear does, says which
   entries could be non-zero: ``m~ + bound + bias > 0``;
4. those candidates (TopK of the candidate mask per row, at most a few times the true support) are
   **recomputed in fp32** (Gather of their fp32 head rows, one batched MatMul, max over tokens) and scattered
   over ``m~``; every other entry keeps ``m~``, which the bound proves gives weight 0 after bias and relu. The
   fp32 graph's own tail (bias, relu, log1p, zeroed tokens) follows unchanged, so the output is the same
   ``sparse_weights`` tensor.

The weights therefore equal the fp32 graph's (to fp32 summation order, ~1e-6), with the same support, and the
runtime needs nothing new. Weights are quantised with ``reduce_range`` (7-bit): on CPUs without VNNI,
onnxruntime's u8s8 kernel adds pairs of products in int16 (``vpmaddubsw``), which saturates for 8-bit weights
and would void the bound; 7-bit weights keep every pair within int16 (255 * 64 * 2 < 32767).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Dict, List, Tuple

import numpy as np

from .graph import head_nodes, write_optimized

# float32 rounding of the int8 product's scaling and of the bound itself, far below any bound term
SLACK = 1e-3


def _quantize_head(src: str, dst: str, heads: List[str]) -> Dict[str, np.ndarray]:
    """int8 (7-bit) per-column weights for the head slices only; returns their dequantised values by weight
    name."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        src,
        dst,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_quantize=heads,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    inits = {t.name: t for t in onnx.load(dst).graph.initializer}
    out = {}
    for name in inits:
        if name.startswith("w_head_") and name.endswith("_quantized"):
            base = name[: -len("_quantized")]
            wq = numpy_helper.to_array(inits[name]).astype(np.float64)  # [H, chunk]
            sc = numpy_helper.to_array(inits[base + "_scale"]).astype(np.float64)
            zp = numpy_helper.to_array(inits[base + "_zero_point"])
            if np.any(zp != 0):
                raise ValueError("expected symmetric int8 head weights")
            if np.max(np.abs(wq)) > 64:
                msg = "head weights are not 7-bit (reduce_range): the int16 pair sums could saturate"
                raise ValueError(msg)
            out[base] = wq * sc
    return out


def _bound_constants(weight: np.ndarray, w_hat: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(D, N * sqrt(H) / 2, d)``: per vocabulary row, the float32 constants of the bound (rounded up, so
    float32 storage never shrinks it) and ``d = ||w - w^||`` in float64."""
    hidden = weight.shape[1]
    d = np.sqrt(np.sum((weight.astype(np.float64) - w_hat) ** 2, axis=1))
    nrm = np.sqrt(np.sum(w_hat**2, axis=1))
    d32 = np.nextafter(d.astype(np.float32), np.float32(np.inf))
    n32 = np.nextafter((nrm * np.sqrt(hidden) / 2.0).astype(np.float32), np.float32(np.inf))
    return d32, n32, d


def _screen_nodes(h_name: str, m_name: str, bias_name: str) -> List[Any]:
    """The nodes that bound every entry of the int8 maxima ``m_name``, pick the candidates and recompute them
    in fp32 from ``h_name``: output ``screen/m_exact`` (reads the ``screen/`` constants)."""
    import onnx
    from onnx import helper as H

    P = "screen/"
    return [
        # per-tensor activation scale, as DynamicQuantizeLinear computes it
        H.make_node("ReduceMin", [h_name], [P + "hmin"], keepdims=0),
        H.make_node("ReduceMax", [h_name], [P + "hmax"], keepdims=0),
        H.make_node("Min", [P + "hmin", P + "zero"], [P + "lo"]),
        H.make_node("Max", [P + "hmax", P + "zero"], [P + "hi"]),
        H.make_node("Sub", [P + "hi", P + "lo"], [P + "range"]),
        H.make_node("Mul", [P + "range", P + "inv255"], [P + "scale"]),
        # max_t ||h_t|| per row: [B, 1]
        H.make_node("Mul", [h_name, h_name], [P + "h2"]),
        H.make_node("ReduceSum", [P + "h2", P + "axis2"], [P + "n2"], keepdims=0),
        H.make_node("ReduceMax", [P + "n2"], [P + "n2max"], axes=[1], keepdims=1),
        H.make_node("Sqrt", [P + "n2max"], [P + "xnorm"]),
        # upper bound of the logit max: m~ + bias + s * sqrt(H)/2 * N + max||h|| * D + slack
        H.make_node("Mul", [P + "scale", P + "n_half_sqrt_h"], [P + "act"]),
        H.make_node("Mul", [P + "xnorm", P + "d"], [P + "wterm"]),
        H.make_node("Add", [m_name, bias_name], [P + "mb"]),
        H.make_node("Add", [P + "mb", P + "act"], [P + "ub1"]),
        H.make_node("Add", [P + "ub1", P + "wterm"], [P + "ub2"]),
        H.make_node("Add", [P + "ub2", P + "slack"], [P + "ub"]),
        H.make_node("Greater", [P + "ub", P + "zero"], [P + "cand"]),
        H.make_node("Cast", [P + "cand"], [P + "candf"], to=onnx.TensorProto.FLOAT),
        # k = the most candidates of any row (at least 1); TopK picks every candidate of every row
        H.make_node("ReduceSum", [P + "candf", P + "one"], [P + "count"], keepdims=0),
        H.make_node("ReduceMax", [P + "count"], [P + "kmaxf"], keepdims=1),
        H.make_node("Cast", [P + "kmaxf"], [P + "kmax0"], to=onnx.TensorProto.INT64),
        H.make_node("Max", [P + "kmax0", P + "one"], [P + "kmax"]),
        H.make_node("TopK", [P + "candf", P + "kmax"], [P + "topv", P + "idx"], axis=1, largest=1, sorted=0),
        # exact fp32 logits of the picked entries, max over tokens
        H.make_node("Gather", [P + "w_fp32", P + "idx"], [P + "wc"], axis=0),  # [B, k, H]
        H.make_node("Transpose", [P + "wc"], [P + "wct"], perm=[0, 2, 1]),  # [B, H, k]
        H.make_node("MatMul", [h_name, P + "wct"], [P + "lc"]),  # [B, S, k]
        H.make_node("ReduceMax", [P + "lc"], [P + "mc"], axes=[1], keepdims=0),  # [B, k]
        H.make_node("ScatterElements", [m_name, P + "idx", P + "mc"], [P + "m_exact"], axis=1),
    ]


def _topological_order(graph: Any) -> None:
    """Reorder ``graph.node`` so that every node comes after the nodes that write its inputs."""
    order, done = [], {t.name for t in graph.initializer} | {i.name for i in graph.input}
    pending = list(graph.node)
    while pending:
        rest = []
        for n in pending:
            if all((not i) or i in done for i in n.input):
                order.append(n)
                done.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError("screened graph has a cycle")
        pending = rest
    del graph.node[:]
    graph.node.extend(order)


def screen_head(src: str, dst: str) -> Dict[str, Any]:
    """Rewrite the optimised fp32 graph ``src`` into the screened graph ``dst`` (same inputs and output);
    returns what was done (for the manifest)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(src)
    g = model.graph
    heads, h_name, add = head_nodes(g)
    inits = {t.name: t for t in g.initializer}
    m_name = [i for i in add.input if i not in inits][0]
    bias_name = [i for i in add.input if i != m_name][0]
    w_slices = [numpy_helper.to_array(inits[n.input[1]]).astype(np.float32) for n in heads]  # [H, chunk] each
    weight = np.ascontiguousarray(np.concatenate(w_slices, axis=1).T)  # [V, H]

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        q = os.path.join(tmp, "q.onnx")
        deq = _quantize_head(src, q, [n.name for n in heads])
        w_hat = np.concatenate([deq[n.input[1]] for n in heads], axis=1).T  # [V, H], float64
        qm = onnx.load(q)
        qg = qm.graph
        d32, n32, d = _bound_constants(weight, w_hat)
        constants = {
            "w_fp32": weight,
            "d": d32,
            "n_half_sqrt_h": n32,
            "zero": np.float32(0.0),
            "one": np.int64(1).reshape(1),
            "inv255": np.float32(1.0 / 255.0 * (1 + 1e-6)),
            "slack": np.float32(SLACK),
        }
        for name, arr in constants.items():
            qg.initializer.append(numpy_helper.from_array(np.asarray(arr), "screen/" + name))
        qg.node.extend(_screen_nodes(h_name, m_name, bias_name))
        qg.initializer.append(numpy_helper.from_array(np.int64(2).reshape(1), "screen/axis2"))
        for n in qg.node:  # the fp32 tail (bias, relu, log1p, ...) now reads the exact maxima
            if n.name == add.name:
                n.input[list(n.input).index(m_name)] = "screen/m_exact"
        _topological_order(qg)  # the new nodes read h and m~, and the bias Add must come after them
        staged = os.path.join(tmp, "screened.onnx")
        onnx.save_model(qm, staged)
        del qm, model
        write_optimized(staged, dst, "extended")
    return {
        "scheme": "int8-exact",
        "method": "int8 screen of the MLM head (onnxruntime quantize_dynamic, 7-bit per-column weights, "
        "uint8 per-tensor activations) with an in-graph error bound; every entry the bound cannot rule out "
        "is recomputed in fp32",
        "encoder": "fp32",
        "exact": True,
        "head_slices": len(heads),
        "bound": "max_t||h_t||*||w_v - w^_v|| + sqrt(H)*s_x/2*||w^_v|| + %g" % SLACK,
        "weight_error_norm_max": float(d.max()),
    }


__all__ = ["SLACK", "screen_head"]
