"""Export-time graph optimisation and int8 quantisation, all with onnxruntime's own tools.

The artifact stores the already-optimised graph, so the runtime loads it with graph optimisations at ``basic`` (constant
folding only) and never spends load time on fusions:

1. ``onnxruntime.transformers.optimizer.optimize_model`` (python fusions: EmbedLayerNormalization, Attention,
   SkipLayerNormalization, BiasGelu) where the architecture is one it knows;
2. an onnxruntime session at ``ORT_ENABLE_EXTENDED`` with ``optimized_model_filepath`` bakes the remaining
   hardware-independent fusions into the file (``ORT_ENABLE_ALL`` would add layout transforms tied to this CPU);
3. for int8, smoothing/centring of the quantised inputs (exact in fp32, chosen on calibration texts; see
   ``smooth_activations``), then ``onnxruntime.quantization.quantize_dynamic`` (int8 weights, per-channel for MatMul and
   per-tensor for Attention, dynamic uint8 activations; the head transform's small MatMul stays fp32), then step 2
   again, which fuses DynamicQuantizeLinear + MatMulInteger + scale into ``DynamicQuantizeMatMul`` so the int32
   ``[tokens x vocab]`` product is never materialised.

The fused ops live in the ``com.microsoft`` domain: the manifest records the onnxruntime version that wrote them.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence

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


# -- int8: smoothing (SmoothQuant-style) and quantisation --------------------------------------------------------------
#
# quantize_dynamic quantises each MatMul's activation per tensor (uint8, range from the tensor's own min/max at run time),
# so a few wide channels of an activation waste the 8-bit range of all the others. For each activation X read by
# quantised MatMul/Attention nodes with constant weights, a per-channel vector s moves range from X into the weights:
# X @ W == (X / s) @ (s[:, None] * W), exact in real arithmetic. s_k = max|X_k - c_k|^a / max|W_k,:|^(1-a), with max|X_k|
# measured on the calibration texts. Where a layer norm writes X (or rows copied from its output, as the max-pooling
# head's padding does) and nothing else reads it, X may also be centred: X - c with c the channel means on the
# calibration texts, and c @ W, a constant per output column, joins the bias that the product gets next (an Add, a
# BiasGelu, or the Add after the head's ReduceMax/Concat). For each X the variant (a from SMOOTH_ALPHAS or no scaling,
# centred or not) is the one whose simulated int8 product (uint8 per-tensor activations, int8 symmetric weights as
# quantised below) is closest to the fp32 product on the calibration texts. (X - c) / s is folded into the op that
# writes X where that is exact (gamma/beta of that layer norm; 1/s into the V columns of an Attention whose context
# only the smoothed nodes read), else 1/s is a Mul node (no centring there).
#
# Measured on splade-tiny (SciFact): most of the int8 error came from the encoder, not from the MLM head, and above all
# from onnxruntime's QAttention with per-column weight scales (what per_channel=True gives it): the first layer's
# attention alone caused ~15x the error of the same node with per-tensor weights, while per-column fake-quantised
# weights in an fp32 graph are fine. So Attention weights are quantised per tensor. The head's input is centred but not
# scaled: scaling it (a = 0.3 ... 0.85) made the vectors worse end to end although the simulated product error fell.

SMOOTH_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_UNSMOOTHED_WEIGHTS = ("w_head",)  # the MLM head's slices (exporter.FusedSplade): measured, smoothing them hurts
_LN_AFFINE = {  # op_type -> (gamma input index, beta input index) of layer norms whose output 0 is gamma * norm + beta
    "LayerNormalization": (1, 2),
    "SkipLayerNormalization": (2, 3),
    "SimplifiedLayerNormalization": (1, None),
    "SkipSimplifiedLayerNormalization": (2, None),
    "EmbedLayerNormalization": (5, 6),
}


def _fake_quant_activation(x):
    """DynamicQuantizeLinear then dequantised: uint8, asymmetric, range [min(0, x), max(0, x)] over the whole tensor."""
    import numpy as np

    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = (hi - lo) / 255.0 or 1.0
    zp = float(np.clip(np.round(-lo / scale), 0, 255))
    return (np.clip(np.round(x / scale) + zp, 0, 255) - zp) * scale


def _fake_quant_weight(w, per_channel: bool):
    """int8 symmetric ([-127, 127]) weights, one scale per output column or one for the tensor, dequantised."""
    import numpy as np

    amax = np.abs(w).max(axis=0) if per_channel else np.full(w.shape[1], np.abs(w).max())
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return np.clip(np.round(w / scale), -127, 127) * scale


def _split_feeds(feeds: Dict[str, Any]):
    """A padded batch of feeds -> one unpadded [1, n] feed per text (dynamic ranges are per run; padding excluded)."""
    import numpy as np

    mask = np.asarray(feeds["attention_mask"])
    out = []
    for r in range(mask.shape[0]):
        keep = mask[r] > 0
        if keep.any():
            out.append({k: np.ascontiguousarray(np.asarray(v)[r][keep][None]) for k, v in feeds.items()})
    return out


def _default_calibration_feeds(src: str, max_length: int = 256):
    """The export's parity texts through the tokenizer saved beside ``src`` (the exporter writes it there first)."""
    import numpy as np

    path = os.path.join(os.path.dirname(os.path.abspath(src)), "tokenizer.json")
    if not os.path.isfile(path):
        return None
    from tokenizers import Tokenizer

    from .samples import PARITY_TEXTS

    tok = Tokenizer.from_file(path)
    tok.enable_truncation(max_length)
    tok.no_padding()
    out = []
    for e in tok.encode_batch(list(PARITY_TEXTS)):
        ids = np.asarray([e.ids], np.int64)
        out.append({"input_ids": ids, "attention_mask": np.ones_like(ids),
                    "token_type_ids": np.asarray([e.type_ids], np.int64)})
    return out


def _session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _run_all(path: str, feeds_list, outputs):
    sess = _session(path)
    names = {i.name for i in sess.get_inputs()}
    return [sess.run(outputs, {k: v for k, v in f.items() if k in names}) for f in feeds_list]


def _save(model, path: str) -> None:
    import onnx

    big = model.ByteSize() > (1 << 30)
    onnx.save_model(model, path, save_as_external_data=big, all_tensors_to_one_file=True,
                    location=os.path.basename(path) + ".data" if big else None)


def _row_copies(graph_consumers, start: str, targets):
    """The tensors derived from ``start`` if everything that reads ``start`` (transitively) is a node in ``targets``
    (names of first outputs), ``Shape``, or an op that only copies or selects whole rows of it (``Where`` between two
    such tensors, ``Gather``/``GatherElements`` along a non-channel axis): then a per-channel affine change of ``start``
    reaches the targets and nothing else; else None."""
    derived = {start}
    changed = True
    while changed:
        changed = False
        for t in list(derived):  # noqa: PERF101 - derived grows in the loop
            for n in graph_consumers.get(t, []):
                if n.output[0] in targets or n.op_type == "Shape" or n.output[0] in derived:
                    continue
                axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
                if n.op_type in ("Gather", "GatherElements") and n.input[0] in derived \
                        and not set(n.input[1:]) & derived and axis in (0, 1):
                    pass
                elif n.op_type == "Where" and n.input[0] not in derived:
                    if not (n.input[1] in derived and n.input[2] in derived):
                        continue  # the other branch may join later; checked below
                else:
                    return None
                derived.update(n.output)
                changed = True
    # every reader of a derived tensor is now accounted for (a Where with one derived branch is not)
    ok = all(n.output[0] in targets or n.op_type == "Shape" or n.output[0] in derived
             for t in derived for n in graph_consumers.get(t, []))
    return derived if ok else None


def _bias_targets(node, consumers, inits, uses, widths, rank: int):
    """Where ``node``'s product (a MatMul/Attention with constant weight) gets a constant vector added per output
    column: [(initializer name, offset)], or None. Recognised: Add / BiasGelu / SkipLayerNormalization bias after it,
    Attention's own bias, and ReduceMax over non-channel axes, then Concat along channels, then Add (max pooling).
    ``rank``: that of the node's input (and product)."""
    def const_vec(name, size):
        return name in inits and uses.get(name) == 1 and list(inits[name].dims) == [size]

    n_out = widths[node.name]
    if node.op_type == "Attention":
        return [(node.input[2], 0)] if len(node.input) > 2 and const_vec(node.input[2], n_out) else None
    out = node.output[0]
    cons = consumers.get(out, [])
    if len(cons) != 1:
        return None
    c = cons[0]
    if c.op_type == "Add":
        other = c.input[1] if c.input[0] == out else c.input[0]
        return [(other, 0)] if const_vec(other, n_out) else None
    if c.op_type == "BiasGelu" and c.input[0] == out:
        return [(c.input[1], 0)] if const_vec(c.input[1], n_out) else None
    if c.op_type == "SkipLayerNormalization" and c.input[0] == out:
        return [(c.input[4], 0)] if len(c.input) > 4 and const_vec(c.input[4], n_out) else None
    if c.op_type == "ReduceMax":
        axes = next((list(a.ints) for a in c.attribute if a.name == "axes"), None)
        keep = next((a.i for a in c.attribute if a.name == "keepdims"), 1)
        if axes is None or keep != 0 or not axes or any(not 0 <= ax < rank - 1 for ax in axes) or len(c.input) > 1:
            return None
        cc = consumers.get(c.output[0], [])
        if len(cc) != 1 or cc[0].op_type != "Concat":
            return None
        cat = cc[0]
        if next((a.i for a in cat.attribute if a.name == "axis"), None) not in (-1, rank - len(set(axes)) - 1):
            return None
        offset = 0
        for inp in cat.input:
            if inp == c.output[0]:
                break
            w = widths.get(("reduced", inp))
            if w is None:
                return None
            offset += w
        total = sum(widths.get(("reduced", inp), -1 << 40) for inp in cat.input)
        add = consumers.get(cat.output[0], [])
        if total <= 0 or len(add) != 1 or add[0].op_type != "Add":
            return None
        other = add[0].input[1] if add[0].input[0] == cat.output[0] else add[0].input[0]
        return [(other, offset)] if const_vec(other, total) else None
    return None


def _simulated_error(Xs, ws, refs, per_channel, s, c) -> float:
    """Squared error of the int8 product ((X - c) / s) @ (s * W) + c @ W against the fp32 X @ W, summed over texts."""
    import numpy as np

    wq = [_fake_quant_weight(w * s[:, None], pc) for w, pc in zip(ws, per_channel)]
    e = 0.0
    for X, rs in zip(Xs, refs):
        xq = _fake_quant_activation((X - c) / s)
        e += sum(float(np.square(xq @ w + (c @ w) - r).sum()) for w, r in zip(wq, rs))
    return e


def smooth_activations(src: str, dst: str, calibration_feeds, *, alphas=SMOOTH_ALPHAS,
                       attention_per_channel: bool = False, skip: Sequence[str] = ()) -> Dict[str, Any]:
    """Write to ``dst`` a copy of the fp32 graph ``src`` with smoothed quantisation inputs (see the comment above);
    returns what was done, including the largest change of the graph's outputs on the calibration texts (fp32).
    ``skip``: names of nodes that stay fp32 (not smoothed)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(src)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    uses: Dict[str, int] = {}
    consumers: Dict[str, list] = {}
    producer = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
            consumers.setdefault(i, []).append(n)
        for o in n.output:
            producer[o] = n
    graph_outputs = {o.name for o in graph.output}

    def array(name):
        return numpy_helper.to_array(inits[name])

    def store(name, value):
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))

    # activations read by quantisable nodes with a constant 2-D weight of their own
    sites: Dict[str, list] = {}
    widths: Dict[Any, int] = {}
    for n in graph.node:
        if n.op_type == "MatMul" or (n.op_type == "Attention" and n.domain == "com.microsoft"
                                     and not any(a.name == "qkv_hidden_sizes" for a in n.attribute)):
            if len(n.input) < 2 or n.input[1] not in inits or uses.get(n.input[1]) != 1 or n.name in skip:
                continue
            if len(inits[n.input[1]].dims) != 2 or inits[n.input[1]].data_type != onnx.TensorProto.FLOAT:
                continue
            sites.setdefault(n.input[0], []).append(n)
            widths[n.name] = int(inits[n.input[1]].dims[1])
            for c in consumers.get(n.output[0], []):
                if c.op_type == "ReduceMax":
                    widths[("reduced", c.output[0])] = widths[n.name]
    sites = {x: ns for x, ns in sites.items() if x in producer and x not in graph_outputs}
    info: Dict[str, Any] = {"method": "per-channel scaling (SmoothQuant-style) and centring of quantised inputs, "
                                      "exact in fp32",
                            "alphas_tried": [None] + [float(a) for a in alphas], "calibration_texts": 0, "sites": []}
    if not sites or not calibration_feeds:
        info["skipped"] = "no calibration texts" if sites else "no smoothable inputs"
        shutil.copyfile(src, dst) if os.path.abspath(src) != os.path.abspath(dst) else None
        return info
    out_names = [o.name for o in graph.output]
    keys = list(sites)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        for x in keys:
            probe.graph.output.append(helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None))
        probe_path = os.path.join(tmp, "probe.onnx")
        _save(probe, probe_path)
        del probe
        runs = _run_all(probe_path, calibration_feeds, out_names + keys)
    info["calibration_texts"] = len(runs)
    reference = [r[: len(out_names)] for r in runs]
    acts = {x: [r[len(out_names) + j].reshape(-1, r[len(out_names) + j].shape[-1]) for r in runs]
            for j, x in enumerate(keys)}
    ranks = {x: runs[0][len(out_names) + j].ndim for j, x in enumerate(keys)}
    del runs

    for x in keys:
        nodes = sites[x]
        Xs = acts[x]
        weights = [array(n.input[1]).astype(np.float32) for n in nodes]
        if any(w.shape[0] != Xs[0].shape[1] for w in weights):
            continue
        head = any(n.input[1].startswith(_UNSMOOTHED_WEIGHTS) for n in nodes)
        per_channel = [attention_per_channel if n.op_type == "Attention" else True for n in nodes]
        p = producer[x]
        # x is a layer norm's output, or rows copied from it, and nothing else reads that output: its affine part can
        # absorb 1/s and a shift
        ln, q = None, p
        while q is not None and q.op_type in ("Where", "Gather", "GatherElements"):
            q = producer.get(q.input[1] if q.op_type == "Where" else q.input[0])
        derived = _row_copies(consumers, q.output[0], {n.output[0] for n in nodes}) \
            if q is not None and q.op_type in _LN_AFFINE else None
        if derived is not None and x in derived:
            gi, bi = _LN_AFFINE[q.op_type]
            axis = next((helper.get_attribute_value(a) for a in q.attribute if a.name == "axis"), -1)
            params = [q.input[i] if i is not None and i < len(q.input) and q.input[i] else None for i in (gi, bi)]
            if axis == -1 and all(t is None or (t in inits and uses.get(t) == 1
                                                and list(inits[t].dims) == [Xs[0].shape[1]]) for t in params):
                ln = params
        bias_targets = [_bias_targets(n, consumers, inits, uses, widths, ranks[x]) for n in nodes]
        can_shift = ln is not None and ln[0] is not None and ln[1] is not None and all(bias_targets)
        # score the candidates on a column sample of wide weights (the head: [H, vocab])
        step = max(1, sum(w.shape[1] for w in weights) // 4096)
        cols = [np.arange(0, w.shape[1], step) for w in weights]
        ws = [w[:, c] for w, c in zip(weights, cols)]
        refs = [[X @ w for w in ws] for X in Xs]
        den = sum(float(np.square(r).sum()) for rs in refs for r in rs) or 1.0
        xall = np.concatenate(Xs)
        center = xall.mean(axis=0).astype(np.float32)

        zero = np.zeros_like(center)
        one = np.ones_like(center)
        base = _simulated_error(Xs, ws, refs, per_channel, one, zero) / den
        best = (base, None, one, None)
        for shift in ([None, "mean"] if can_shift else [None]):
            c = center if shift else zero
            xmax = np.maximum(np.abs(xall - c).max(axis=0), 1e-5 * max(float(np.abs(xall).max()), 1e-30))
            wmax = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
            wmax = np.maximum(wmax, 1e-5 * max(float(wmax.max()), 1e-30))
            for a in [None] + ([] if head else list(alphas)):
                if a is None:
                    s = one
                else:
                    s = xmax ** a / wmax ** (1.0 - a)
                    s = (s / np.exp(np.mean(np.log(s)))).astype(np.float32)  # geometric mean 1
                if a is None and shift is None:
                    continue
                e = _simulated_error(Xs, ws, refs, per_channel, s, c) / den
                if e < best[0]:
                    best = (e, a, s, shift)
        del refs
        site = {"input": x, "nodes": [n.name for n in nodes], "alpha": best[1], "shift": best[3],
                "simulated_error_ratio": round(best[0] / base, 4) if base > 0 else 1.0}
        info["sites"].append(site)
        if best[1] is None and best[3] is None:
            continue
        s = best[2]
        c = center if best[3] else zero
        if best[3]:  # X @ W == (X - c) @ W + c @ W: c @ W joins the bias each product already gets
            for n, w, targets in zip(nodes, weights, bias_targets):
                for name, off in targets:
                    v = array(name).astype(np.float32)
                    v[off:off + w.shape[1]] += (c.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
                    store(name, v)
        if best[1] is not None:
            for n, w in zip(nodes, weights):
                store(n.input[1], w * s[:, None])
        # (x - c) / s: folded into the layer norm that writes x, or into the V projection of the Attention that
        # writes it (scale only), else a Mul node
        how = None
        if ln is not None and (best[3] is None or ln[1] is not None):
            gamma, beta = ln
            if gamma is not None:
                store(gamma, array(gamma) / s)
            if beta is not None:
                store(beta, (array(beta) - c) / s)
            how = q.op_type
        elif best[3] is None and p.op_type == "Attention" and p.domain == "com.microsoft" and p.output[0] == x \
                and len(consumers.get(x, [])) == len(nodes) \
                and not any(a.name == "qkv_hidden_sizes" for a in p.attribute) and len(p.input) >= 3 \
                and all(t in inits and uses.get(t) == 1 for t in p.input[1:3]):
            w, b, h = array(p.input[1]).copy(), array(p.input[2]).copy(), s.shape[0]
            if w.ndim == 2 and w.shape[1] == 3 * h and b.shape == (3 * h,):
                w[:, 2 * h:] /= s  # the context is softmax(QK') V: its channel k scales with V's column k
                b[2 * h:] /= s
                store(p.input[1], w)
                store(p.input[2], b)
                how = "Attention (V projection)"
        if how is None and best[3] is None:
            base_name = x.strip("/").replace("/", "_") + "_smoothed"
            graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), base_name + "_inv_scale"))
            mul = helper.make_node("Mul", [x, base_name + "_inv_scale"], [base_name], name=base_name)
            graph.node.insert(next(i for i, n in enumerate(graph.node) if x in n.output) + 1, mul)
            for n in nodes:
                n.input[0] = base_name
            how = "Mul"
        assert how is not None, "a shift is only chosen where a layer norm can take it"
        site["applied_in"] = how
    _save(model, dst)
    got = _run_all(dst, calibration_feeds, out_names)
    info["fp32_max_abs_change"] = float(max(float(np.max(np.abs(np.asarray(g) - np.asarray(r))))
                                            for gs, rs in zip(got, reference) for g, r in zip(gs, rs)))
    return info


def head_transform_matmul(path: str) -> Optional[str]:
    """The MatMul of the MLM head's transform (dense -> activation -> LayerNorm -> decoder), found by walking back from
    the decoder slices' input (``w_head*`` weights); None where the graph has no such chain."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    inits = {t.name for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    heads = [n for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1].startswith("w_head")]
    if not heads or len({n.input[0] for n in heads}) != 1:
        return None
    n = producer.get(heads[0].input[0])
    while n is not None and n.op_type in ("Where", "Gather", "GatherElements"):  # rows copied from the layer norm
        n = producer.get(n.input[1] if n.op_type == "Where" else n.input[0])
    if n is None or n.op_type not in _LN_AFFINE:
        return None
    n = producer.get(n.input[0])
    for _ in range(8):  # the activation: fused (BiasGelu, Gelu, FastGelu) or a few elementwise ops
        if n is None:
            return None
        if n.op_type == "MatMul":
            return n.name if len(n.input) > 1 and n.input[1] in inits else None
        if n.op_type not in ("BiasGelu", "Gelu", "FastGelu", "QuickGelu", "Add", "Mul", "Div", "Erf", "Tanh", "Relu",
                             "Sigmoid"):
            return None
        data = [i for i in n.input if i and i not in inits]
        n = producer.get(data[0]) if data else None
    return None


def quantize_int8(src: str, dst: str, *, per_channel: bool = True, calibration_feeds: Optional[Any] = None,
                  smooth: bool = True, fp32_nodes: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Dynamic int8 quantisation of ``src`` (an optimised fp32 graph) into ``dst``, with fusions baked in.

    ``calibration_feeds``: a padded batch of graph feeds (the exporter's parity texts) or a list of per-text feeds; by
    default the built-in parity texts through the ``tokenizer.json`` beside ``src``. They choose the smoothing (above).
    MatMul weights are int8 per output channel (``per_channel``), Attention QKV weights int8 per tensor.
    ``fp32_nodes``: nodes left in fp32; by default the head transform's MatMul (``head_transform_matmul``): on
    splade-tiny it is 0.4% of the FLOPs and fp32 there cut the int8 error on SciFact documents by a fifth, its int8
    error being mostly that of its own weights, which smoothing cannot help."""
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
            if isinstance(feeds, dict):
                feeds = _split_feeds(feeds)
            if feeds is None:
                feeds = _default_calibration_feeds(src)
            stage = os.path.join(tmp, "smoothed.onnx")
            info["smoothing"] = smooth_activations(src, stage, feeds, skip=fp32_nodes)
        # two passes, as quantize_dynamic's per_channel is global: Attention with per-tensor weights (onnxruntime's
        # QAttention with per-column weight scales lost ~15x more accuracy), then MatMul with per-channel ones
        q1 = os.path.join(tmp, "q_attention.onnx")
        q = os.path.join(tmp, "q.onnx")
        quantize_dynamic(stage, q1, weight_type=QuantType.QInt8, per_channel=False, reduce_range=False,
                         op_types_to_quantize=["Attention"], nodes_to_exclude=list(fp32_nodes),
                         extra_options=dict(extra))
        quantize_dynamic(q1, q, weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=False,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=list(fp32_nodes), extra_options=dict(extra))
        _bake(q, dst, "extended")
    return info


__all__ = ["optimize_graph", "quantize_int8", "smooth_activations", "head_transform_matmul", "int8_agreement",
           "QUANTIZE_CHOICES"]


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
