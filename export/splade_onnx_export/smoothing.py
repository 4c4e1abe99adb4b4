"""Smoothing (SmoothQuant-style) and centring of the inputs that int8 quantisation quantises; exact in fp32.

quantize_dynamic quantises each MatMul's activation per tensor (uint8, range from the tensor's own min/max at
run time), so a few wide channels of an activation waste the 8-bit range of all the others. For each
activation X read by quantised MatMul/Attention nodes with constant weights, a per-channel vector s moves
range from X into the weights: X @ W == (X / s) @ (s[:, None] * W), exact in real arithmetic. s_k = max|X_k -
c_k|^a / max|W_k,:|^(1-a), with max|X_k| measured on the calibration texts. Where a layer norm writes X (or
rows copied from its output, as the max-pooling head's padding does) and nothing else reads it, X may also be
centred: X - c with c the channel means on the calibration texts, and c @ W, a constant per output column,
joins the bias that the product gets next (an Add, a BiasGelu, or the Add after the head's ReduceMax/Concat).
For each X the variant (a from SMOOTH_ALPHAS or no scaling, centred or not) is the one whose simulated int8
product (uint8 per-tensor activations, int8 symmetric weights as quantised by ``int8.quantize_int8``) is
closest to the fp32 product on the calibration texts. (X - c) / s is folded into the op that writes X where
that is exact (gamma/beta of that layer norm; 1/s into the V columns of an Attention whose context only the
smoothed nodes read), else 1/s is a Mul node (no centring there).

Measured on splade-tiny (SciFact): most of the int8 error came from the encoder, not from the MLM head, and
above all from onnxruntime's QAttention with per-column weight scales (what per_channel=True gives it): the
first layer's attention alone caused ~15x the error of the same node with per-tensor weights, while per-column
fake-quantised weights in an fp32 graph are fine. So Attention weights are quantised per tensor. The head's
input is centred but not scaled: scaling it (a = 0.3 ... 0.85) made the vectors worse end to end although the
simulated product error fell.

``smooth_activations`` runs these steps: index the graph, find the quantisable inputs (sites), probe their
values on the calibration texts, then per site: find the layer norm that can absorb the change, choose the
variant, apply it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .graph import LAYER_NORM_AFFINE, Feeds, run_graph, save_model

SMOOTH_ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# the MLM head's slices (wrapper.FusedSplade): measured, smoothing them hurts
UNSMOOTHED_WEIGHTS = ("w_head",)
_ROW_COPY_OPS = ("Where", "Gather", "GatherElements")


def fake_quant_activation(x: np.ndarray) -> np.ndarray:
    """DynamicQuantizeLinear then dequantised: uint8, asymmetric, range [min(0, x), max(0, x)] over the whole
    tensor."""
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = (hi - lo) / 255.0 or 1.0
    zp = float(np.clip(np.round(-lo / scale), 0, 255))
    return (np.clip(np.round(x / scale) + zp, 0, 255) - zp) * scale


def fake_quant_weight(w: np.ndarray, per_channel: bool) -> np.ndarray:
    """int8 symmetric ([-127, 127]) weights, one scale per output column or one for the tensor,
    dequantised."""
    amax = np.abs(w).max(axis=0) if per_channel else np.full(w.shape[1], np.abs(w).max())
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return np.clip(np.round(w / scale), -127, 127) * scale


class _Graph:
    """An ONNX model with the lookups the steps share: initializers, use counts, readers and writers of
    tensors."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.uses: Dict[str, int] = {}
        self.consumers: Dict[str, List[Any]] = {}
        self.producer: Dict[str, Any] = {}
        for n in self.graph.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1
                self.consumers.setdefault(i, []).append(n)
            for o in n.output:
                self.producer[o] = n
        self.outputs = [o.name for o in self.graph.output]

    def array(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name])

    def store(self, name: str, value: np.ndarray) -> None:
        from onnx import numpy_helper

        tensor = numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)
        self.inits[name].CopyFrom(tensor)

    def own_constant(self, name: str) -> bool:
        """An initializer that only one node reads."""
        return name in self.inits and self.uses.get(name) == 1


def _find_sites(g: _Graph, skip: Sequence[str]) -> Tuple[Dict[str, List[Any]], Dict[Any, int]]:
    """Activations read by quantisable nodes with a constant 2-D float weight of their own: ``{x: nodes}``,
    and the output width of each node (and of each ReduceMax after one, keyed ``("reduced", name)``)."""
    import onnx

    sites: Dict[str, List[Any]] = {}
    widths: Dict[Any, int] = {}
    for n in g.graph.node:
        if n.op_type == "MatMul" or (
            n.op_type == "Attention"
            and n.domain == "com.microsoft"
            and not any(a.name == "qkv_hidden_sizes" for a in n.attribute)
        ):
            if len(n.input) < 2 or not g.own_constant(n.input[1]) or n.name in skip:
                continue
            w = g.inits[n.input[1]]
            if len(w.dims) != 2 or w.data_type != onnx.TensorProto.FLOAT:
                continue
            sites.setdefault(n.input[0], []).append(n)
            widths[n.name] = int(w.dims[1])
            for c in g.consumers.get(n.output[0], []):
                if c.op_type == "ReduceMax":
                    widths[("reduced", c.output[0])] = widths[n.name]
    return {x: ns for x, ns in sites.items() if x in g.producer and x not in g.outputs}, widths


class _Probe(NamedTuple):
    reference: List[List[np.ndarray]]  # the graph's outputs per calibration text
    acts: Dict[str, List[np.ndarray]]  # each site's values per text, as [tokens, channels]
    ranks: Dict[str, int]  # each site's rank


def _probe(g: _Graph, keys: List[str], feeds: Sequence[Feeds], tmp: str) -> _Probe:
    """Run a copy of the graph that also outputs every site, on the calibration texts."""
    import onnx
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(g.model)
    for x in keys:
        probe.graph.output.append(helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None))
    probe_path = os.path.join(tmp, "probe.onnx")
    save_model(probe, probe_path)
    del probe
    k = len(g.outputs)
    runs = run_graph(probe_path, feeds, g.outputs + keys, basic_optimization=True)
    return _Probe(
        [r[:k] for r in runs],
        {x: [r[k + j].reshape(-1, r[k + j].shape[-1]) for r in runs] for j, x in enumerate(keys)},
        {x: runs[0][k + j].ndim for j, x in enumerate(keys)},
    )


def _row_copies(graph_consumers: Dict[str, List[Any]], start: str, targets: Any) -> Optional[set]:
    """The tensors derived from ``start`` if everything that reads ``start`` (transitively) is a node in
    ``targets`` (names of first outputs), ``Shape``, or an op that only copies or selects whole rows of it
    (``Where`` between two such tensors, ``Gather``/``GatherElements`` along a non-channel axis): then a
    per-channel affine change of ``start`` reaches the targets and nothing else; else None."""
    derived = {start}
    changed = True
    while changed:
        changed = False
        for t in list(derived):  # noqa: PERF101 - derived grows in the loop
            for n in graph_consumers.get(t, []):
                if n.output[0] in targets or n.op_type == "Shape" or n.output[0] in derived:
                    continue
                axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
                if (
                    n.op_type in ("Gather", "GatherElements")
                    and n.input[0] in derived
                    and not set(n.input[1:]) & derived
                    and axis in (0, 1)
                ):
                    pass
                elif n.op_type == "Where" and n.input[0] not in derived:
                    if not (n.input[1] in derived and n.input[2] in derived):
                        continue  # the other branch may join later; checked below
                else:
                    return None
                derived.update(n.output)
                changed = True
    # every reader of a derived tensor is now accounted for (a Where with one derived branch is not)
    ok = all(
        n.output[0] in targets or n.op_type == "Shape" or n.output[0] in derived
        for t in derived
        for n in graph_consumers.get(t, [])
    )
    return derived if ok else None


def _layer_norm_writer(
    g: _Graph, x: str, nodes: List[Any], width: int
) -> Tuple[Optional[List[Optional[str]]], Optional[Any]]:
    """``([gamma, beta], layer norm)`` when ``x`` is a layer norm's output, or rows copied from it, and
    nothing else reads that output, so its affine part can absorb 1/s and a shift (gamma or beta None where
    the op has none); ``(None, node)`` otherwise."""
    from onnx import helper

    q = g.producer[x]
    while q is not None and q.op_type in _ROW_COPY_OPS:
        q = g.producer.get(q.input[1] if q.op_type == "Where" else q.input[0])
    derived = (
        _row_copies(g.consumers, q.output[0], {n.output[0] for n in nodes})
        if q is not None and q.op_type in LAYER_NORM_AFFINE
        else None
    )
    if derived is None or x not in derived:
        return None, q
    gi, bi = LAYER_NORM_AFFINE[q.op_type]
    axis = next((helper.get_attribute_value(a) for a in q.attribute if a.name == "axis"), -1)
    params = [q.input[i] if i is not None and i < len(q.input) and q.input[i] else None for i in (gi, bi)]
    fits = all(t is None or (g.own_constant(t) and list(g.inits[t].dims) == [width]) for t in params)
    if axis == -1 and fits:
        return params, q
    return None, q


def _bias_targets(
    node: Any,
    consumers: Dict[str, List[Any]],
    inits: Dict[str, Any],
    uses: Dict[str, int],
    widths: Dict[Any, int],
    rank: int,
) -> Optional[List[Tuple[str, int]]]:
    """Where ``node``'s product (a MatMul/Attention with constant weight) gets a constant vector added per
    output column: [(initializer name, offset)], or None. Recognised: Add / BiasGelu / SkipLayerNormalization
    bias after it, Attention's own bias, and ReduceMax over non-channel axes, then Concat along channels, then
    Add (max pooling). ``rank``: that of the node's input (and product)."""

    def const_vec(name: str, size: int) -> bool:
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
        return _bias_after_max(c, consumers, widths, rank, const_vec)
    return None


def _bias_after_max(
    red: Any, consumers: Dict[str, List[Any]], widths: Dict[Any, int], rank: int, const_vec: Any
) -> Optional[List[Tuple[str, int]]]:
    """The bias of a max-pooled slice: ReduceMax over non-channel axes, then Concat along channels, then
    Add."""
    axes = next((list(a.ints) for a in red.attribute if a.name == "axes"), None)
    keep = next((a.i for a in red.attribute if a.name == "keepdims"), 1)
    if axes is None or keep != 0 or not axes or len(red.input) > 1:
        return None
    if any(not 0 <= ax < rank - 1 for ax in axes):
        return None
    cc = consumers.get(red.output[0], [])
    if len(cc) != 1 or cc[0].op_type != "Concat":
        return None
    cat = cc[0]
    if next((a.i for a in cat.attribute if a.name == "axis"), None) not in (-1, rank - len(set(axes)) - 1):
        return None
    offset = 0
    for inp in cat.input:
        if inp == red.output[0]:
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


def _simulated_error(
    Xs: List[np.ndarray],
    ws: List[np.ndarray],
    refs: List[List[np.ndarray]],
    per_channel: List[bool],
    s: np.ndarray,
    c: np.ndarray,
) -> float:
    """Squared error of the int8 product ((X - c) / s) @ (s * W) + c @ W against the fp32 X @ W, summed over
    texts."""
    wq = [fake_quant_weight(w * s[:, None], pc) for w, pc in zip(ws, per_channel, strict=True)]
    e = 0.0
    for X, rs in zip(Xs, refs, strict=True):
        xq = fake_quant_activation((X - c) / s)
        e += sum(float(np.square(xq @ w + (c @ w) - r).sum()) for w, r in zip(wq, rs, strict=True))
    return e


class _Choice(NamedTuple):
    error: float  # simulated error of the chosen variant, relative to the fp32 product
    base: float  # that of no smoothing
    alpha: Optional[float]  # None: no scaling
    scale: np.ndarray  # s (ones without scaling)
    shift: Optional[str]  # "mean": centred; None: not
    center: np.ndarray  # c (zeros when not centred)


def _choose(
    Xs: List[np.ndarray],
    weights: List[np.ndarray],
    per_channel: List[bool],
    *,
    can_shift: bool,
    alphas: Sequence[float],
) -> _Choice:
    """The variant (alpha or none, centred or not) whose simulated int8 product is closest to fp32, scored on
    a column sample of wide weights (the head: [H, vocab]); ``alphas`` empty: centring only."""
    step = max(1, sum(w.shape[1] for w in weights) // 4096)
    cols = [np.arange(0, w.shape[1], step) for w in weights]
    ws = [w[:, c] for w, c in zip(weights, cols, strict=True)]
    refs = [[X @ w for w in ws] for X in Xs]
    den = sum(float(np.square(r).sum()) for rs in refs for r in rs) or 1.0
    xall = np.concatenate(Xs)
    center = xall.mean(axis=0).astype(np.float32)

    zero = np.zeros_like(center)
    one = np.ones_like(center)
    base = _simulated_error(Xs, ws, refs, per_channel, one, zero) / den
    best: Tuple[float, Optional[float], np.ndarray, Optional[str]] = (base, None, one, None)
    for shift in [None, "mean"] if can_shift else [None]:
        c = center if shift else zero
        xmax = np.maximum(np.abs(xall - c).max(axis=0), 1e-5 * max(float(np.abs(xall).max()), 1e-30))
        wmax = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        wmax = np.maximum(wmax, 1e-5 * max(float(wmax.max()), 1e-30))
        for a in [None, *alphas]:
            if a is None:
                s = one
            else:
                s = xmax**a / wmax ** (1.0 - a)
                s = (s / np.exp(np.mean(np.log(s)))).astype(np.float32)  # geometric mean 1
            if a is None and shift is None:
                continue
            e = _simulated_error(Xs, ws, refs, per_channel, s, c) / den
            if e < best[0]:
                best = (e, a, s, shift)
    return _Choice(best[0], base, best[1], best[2], best[3], center if best[3] else zero)


def _apply(
    g: _Graph,
    x: str,
    nodes: List[Any],
    weights: List[np.ndarray],
    bias_targets: List[Optional[List[Tuple[str, int]]]],
    choice: _Choice,
    ln: Optional[List[Optional[str]]],
    ln_node: Any,
) -> str:
    """Rewrite the graph for the chosen variant; returns where (x - c) / s went."""
    s, c = choice.scale, choice.center
    if choice.shift:  # X @ W == (X - c) @ W + c @ W: c @ W joins the bias each product already gets
        for w, targets in zip(weights, bias_targets, strict=True):
            for name, off in targets or ():
                v = g.array(name).astype(np.float32)
                v[off : off + w.shape[1]] += (c.astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
                g.store(name, v)
    if choice.alpha is not None:
        for n, w in zip(nodes, weights, strict=True):
            g.store(n.input[1], w * s[:, None])
    # (x - c) / s: folded into the layer norm that writes x, or into the V projection of the Attention that
    # writes it (scale only), else a Mul node
    if ln is not None and (choice.shift is None or ln[1] is not None):
        gamma, beta = ln
        if gamma is not None:
            g.store(gamma, g.array(gamma) / s)
        if beta is not None:
            g.store(beta, (g.array(beta) - c) / s)
        return str(ln_node.op_type)
    if choice.shift is None and _fold_into_attention_v(g, x, nodes, s):
        return "Attention (V projection)"
    if choice.shift is None:
        _insert_inverse_scale(g, x, nodes, s)
        return "Mul"
    raise AssertionError("a shift is only chosen where a layer norm can take it")


def _fold_into_attention_v(g: _Graph, x: str, nodes: List[Any], s: np.ndarray) -> bool:
    """Divide the V columns of the Attention that writes ``x`` by ``s`` where only ``nodes`` read its context
    (the context is softmax(QK') V: its channel k scales with V's column k); False where that does not
    apply."""
    p = g.producer[x]
    if not (
        p.op_type == "Attention"
        and p.domain == "com.microsoft"
        and p.output[0] == x
        and len(g.consumers.get(x, [])) == len(nodes)
        and not any(a.name == "qkv_hidden_sizes" for a in p.attribute)
        and len(p.input) >= 3
        and all(g.own_constant(t) for t in p.input[1:3])
    ):
        return False
    w, b, h = g.array(p.input[1]).copy(), g.array(p.input[2]).copy(), s.shape[0]
    if not (w.ndim == 2 and w.shape[1] == 3 * h and b.shape == (3 * h,)):
        return False
    w[:, 2 * h :] /= s
    b[2 * h :] /= s
    g.store(p.input[1], w)
    g.store(p.input[2], b)
    return True


def _insert_inverse_scale(g: _Graph, x: str, nodes: List[Any], s: np.ndarray) -> None:
    """A Mul by 1/s right after the op that writes ``x``, read by ``nodes`` instead of ``x``."""
    from onnx import helper, numpy_helper

    base_name = x.strip("/").replace("/", "_") + "_smoothed"
    inv = numpy_helper.from_array((1.0 / s).astype(np.float32), base_name + "_inv_scale")
    g.graph.initializer.append(inv)
    mul = helper.make_node("Mul", [x, base_name + "_inv_scale"], [base_name], name=base_name)
    g.graph.node.insert(next(i for i, n in enumerate(g.graph.node) if x in n.output) + 1, mul)
    for n in nodes:
        n.input[0] = base_name


def _smooth_site(
    g: _Graph,
    x: str,
    nodes: List[Any],
    Xs: List[np.ndarray],
    rank: int,
    widths: Dict[Any, int],
    alphas: Sequence[float],
    attention_per_channel: bool,
) -> Optional[Dict[str, Any]]:
    """Choose and apply the variant for one site; returns its record for the manifest (None: shapes do not
    fit)."""
    weights = [g.array(n.input[1]).astype(np.float32) for n in nodes]
    if any(w.shape[0] != Xs[0].shape[1] for w in weights):
        return None
    head = any(n.input[1].startswith(UNSMOOTHED_WEIGHTS) for n in nodes)
    per_channel = [attention_per_channel if n.op_type == "Attention" else True for n in nodes]
    ln, ln_node = _layer_norm_writer(g, x, nodes, Xs[0].shape[1])
    bias_targets = [_bias_targets(n, g.consumers, g.inits, g.uses, widths, rank) for n in nodes]
    can_shift = ln is not None and ln[0] is not None and ln[1] is not None and all(bias_targets)
    choice = _choose(Xs, weights, per_channel, can_shift=can_shift, alphas=() if head else alphas)
    site: Dict[str, Any] = {
        "input": x,
        "nodes": [n.name for n in nodes],
        "alpha": choice.alpha,
        "shift": choice.shift,
        "simulated_error_ratio": round(choice.error / choice.base, 4) if choice.base > 0 else 1.0,
    }
    if choice.alpha is not None or choice.shift is not None:
        site["applied_in"] = _apply(g, x, nodes, weights, bias_targets, choice, ln, ln_node)
    return site


def smooth_activations(
    src: str,
    dst: str,
    calibration_feeds: Optional[Sequence[Feeds]],
    *,
    alphas: Sequence[float] = SMOOTH_ALPHAS,
    attention_per_channel: bool = False,
    skip: Sequence[str] = (),
) -> Dict[str, Any]:
    """Write to ``dst`` a copy of the fp32 graph ``src`` with smoothed quantisation inputs (see the module
    docstring); returns what was done, including the largest change of the graph's outputs on the calibration
    texts (fp32). ``calibration_feeds``: one unpadded feed dict per text. ``skip``: names of nodes that stay
    fp32 (not smoothed)."""
    import onnx

    g = _Graph(onnx.load(src))
    sites, widths = _find_sites(g, skip)
    info: Dict[str, Any] = {
        "method": "per-channel scaling (SmoothQuant-style) and centring of quantised inputs, exact in fp32",
        "alphas_tried": [None] + [float(a) for a in alphas],
        "calibration_texts": 0,
        "sites": [],
    }
    if not sites or not calibration_feeds:
        info["skipped"] = "no calibration texts" if sites else "no smoothable inputs"
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copyfile(src, dst)
        return info
    keys = list(sites)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
        probe = _probe(g, keys, calibration_feeds, tmp)
    info["calibration_texts"] = len(probe.reference)
    for x in keys:
        acts, rank = probe.acts[x], probe.ranks[x]
        site = _smooth_site(g, x, sites[x], acts, rank, widths, alphas, attention_per_channel)
        if site is not None:
            info["sites"].append(site)
    save_model(g.model, dst)
    got = run_graph(dst, calibration_feeds, g.outputs, basic_optimization=True)
    info["fp32_max_abs_change"] = float(
        max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for gs, rs in zip(got, probe.reference, strict=True)
            for a, b in zip(gs, rs, strict=True)
        )
    )
    return info


__all__ = [
    "SMOOTH_ALPHAS",
    "UNSMOOTHED_WEIGHTS",
    "fake_quant_activation",
    "fake_quant_weight",
    "smooth_activations",
]
