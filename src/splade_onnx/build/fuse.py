"""Torch-free fusion: append the SPLADE head to an ONNX graph that outputs MLM logits ``[batch, seq, vocab]``.

Needs the ``onnx`` package (``pip install 'splade-onnx[fuse]'``); it is imported here only, lazily, never by
``import splade_onnx`` or by :class:`~splade_onnx.Expander` on its normal path.

The appended head: ``mask`` (padding rows get ``-formula.MASK_BIG`` added so they never win a max; for sum
pooling they are multiplied by 0), ``ReduceMax``/``ReduceSum`` over the sequence axis, ``Relu``, an exact
``log1p`` (Kahan: ``log(u) * x / (u - 1)`` with ``u = 1 + x``; ONNX has no Log1p), optionally once more for
log1p(log1p(relu)), and the zeroed token ids multiplied by 0. Before anything is written, the fused graph is
checked against the original logits graph run by onnxruntime with the SPLADE formula in numpy
(:mod:`splade_onnx.build.formula`), on the same parity texts, at the same length, as ``splade-onnx export``
checks its graphs.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from splade_onnx.artifact.manifest import (
    ACTIVATIONS,
    MODEL_NAME,
    OUTPUT_NAME,
    POOLINGS,
    TOKENIZER_NAME,
    Manifest,
    check_out_dir,
    sha256_file,
    staged_dir,
)
from splade_onnx.build.formula import (
    DEFAULT_MODEL_WINDOW,
    MASK_BIG,
    PARITY_TEXTS,
    parity_batch_size,
    parity_length,
    read_special_tokens,
    special_token_ids,
    splade_numpy,
    tolerance_scale,
    versions,
)
from splade_onnx.encode.session import create_session
from splade_onnx.errors import FuseError, MissingExtraError

log = logging.getLogger("splade_onnx")

EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # protobuf's 2 GB limit, with margin
GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
REFERENCE = "the source logits ONNX run by onnxruntime + numpy log1p(relu) masked pooling"

# The name the command line and the hub path import (the window of a checkpoint or tokenizer folder).


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError("fuse", "`splade-onnx fuse`", e) from e
    return onnx


def _find_logits_output(graph: Any) -> Any:
    outs = list(graph.output)
    for o in outs:
        if o.name == "logits":
            return o
    for o in outs:
        dims = o.type.tensor_type.shape.dim
        if len(dims) == 3:
            return o
    raise FuseError(f"no [batch, seq, vocab] logits output among {[o.name for o in outs]}")


def _opset(model: Any) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise FuseError("the graph imports no default-domain opset")


class _HeadBuilder:
    """Nodes and constants of the SPLADE head, all named ``splade_head/...``."""

    P = "splade_head/"

    def __init__(self) -> None:
        from onnx import numpy_helper

        P = self.P
        self.nodes: List[Any] = []
        self.inits = [
            numpy_helper.from_array(np.array([1], dtype=np.int64), P + "axis1"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), P + "axis_last"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), P + "one"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), P + "zero"),
            numpy_helper.from_array(np.array(MASK_BIG, dtype=np.float32), P + "big"),
        ]

    def n(self, op: str, inputs: List[str], out: str, **attrs: Any) -> str:
        """Append one node; returns its output name."""
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [self.P + out], name=self.P + out, **attrs))
        return self.P + out

    def log1p(self, x: str, tag: str) -> str:
        """Exact log1p (Kahan): ``log(u) * x / (u - 1)``, ``x`` where ``u - 1`` rounds to 0."""
        P, n = self.P, self.n
        u = n("Add", [P + "one", x], f"{tag}_u")
        d = n("Sub", [u, P + "one"], f"{tag}_d")
        is0 = n("Equal", [d, P + "zero"], f"{tag}_is0")
        safe = n("Where", [is0, P + "one", d], f"{tag}_safe")
        ratio = n("Div", [x, safe], f"{tag}_ratio")
        lg = n("Log", [u], f"{tag}_log")
        prod = n("Mul", [lg, ratio], f"{tag}_prod")
        return n("Where", [is0, x, prod], f"{tag}_out")

    def activate(self, x: str, activation: str) -> str:
        """``log1p(relu(x))``, or ``log1p(log1p(relu(x)))``."""
        y = self.log1p(self.n("Relu", [x], "relu"), "l1")
        if activation == "log1p_log1p_relu":
            y = self.log1p(y, "l2")
        return y

    def pool(self, logits: str, activation: str, pooling: str, opset: int) -> str:
        """Masked max (padding gets ``-MASK_BIG``, activation after the max) or masked sum (activation
        first)."""
        from onnx import TensorProto

        P, n = self.P, self.n
        lg32 = n("Cast", [logits], "logits_f32", to=TensorProto.FLOAT)
        maskf = n("Cast", ["attention_mask"], "mask_f32", to=TensorProto.FLOAT)
        mask3 = n("Unsqueeze", [maskf, P + "axis_last"], "mask3")  # [B, S, 1]
        if pooling == "max":
            # 0 on real tokens, -MASK_BIG on padding
            pen = n("Mul", [n("Sub", [mask3, P + "one"], "mask_m1"), P + "big"], "penalty")
            masked = n("Add", [lg32, pen], "masked")
            if opset >= 18:
                pooled = n("ReduceMax", [masked, P + "axis1"], "pooled", keepdims=0)
            else:
                pooled = n("ReduceMax", [masked], "pooled", axes=[1], keepdims=0)
            return self.activate(pooled, activation)
        a = n("Mul", [self.activate(lg32, activation), mask3], "act_masked")
        return n("ReduceSum", [a, P + "axis1"], "pooled", keepdims=0)


def append_splade_head(
    model: Any, *, activation: str, pooling: str, zeroed_token_ids: Sequence[int], vocab_size: int
) -> Any:
    """Return a copy of ``model`` whose only output is ``sparse_weights [batch, vocab]``."""
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    opset = _opset(m)
    if opset < 13:
        raise FuseError(
            f"opset {opset} < 13 is not supported (Unsqueeze/ReduceSum axes as inputs); re-export the "
            "logits graph with opset >= 13"
        )
    logits = _find_logits_output(g).name
    names = [i.name for i in g.input]
    if "attention_mask" not in names:
        raise FuseError(f"the graph has no attention_mask input (inputs: {names})")
    b = _HeadBuilder()
    w = b.pool(logits, activation, pooling, opset)
    if len(zeroed_token_ids):
        keep = np.ones(vocab_size, dtype=np.float32)
        keep[list(zeroed_token_ids)] = 0.0
        b.inits.append(numpy_helper.from_array(keep, b.P + "keep"))
        w = b.n("Mul", [w, b.P + "keep"], "zeroed")
    b.nodes.append(helper.make_node("Identity", [w], [OUTPUT_NAME], name=b.P + "output"))
    g.node.extend(b.nodes)
    g.initializer.extend(b.inits)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", vocab_size]))
    return m


def _feeds(
    tok: Any, texts: Sequence[str], max_length: int, inputs: Sequence[str], pad_id: int
) -> Dict[str, np.ndarray]:
    encs = [tok.encode(t) for t in texts]
    seqs = [e.ids[:max_length] for e in encs]
    S = max(len(s) for s in seqs)
    ids = np.full((len(seqs), S), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), S), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = np.zeros_like(ids)
    return {k: v for k, v in feeds.items() if k in inputs}


def _run_rows(model_path: str, output: str, feeds: Dict[str, np.ndarray], batch: int) -> List[np.ndarray]:
    """``output`` of ``model_path`` on the feeds' rows, ``batch`` rows per run (same padding in every run)."""
    sess = create_session(model_path)
    rows = len(feeds["input_ids"])
    runs = [{k: v[i : i + batch] for k, v in feeds.items()} for i in range(0, rows, batch)]
    return [sess.run([output], run)[0] for run in runs]


class _Tokenizer(NamedTuple):
    path: str  # tokenizer.json
    tok: Any  # tokenizers.Tokenizer, no padding or truncation
    specials: Dict[str, Dict[str, Any]]
    special_ids: List[int]  # OpenSearch's rule: named and additional special tokens

    @property
    def pad_id(self) -> int:
        return int(self.specials.get("pad", {}).get("id", 0))


def _load_tokenizer(path: str) -> _Tokenizer:
    from tokenizers import Tokenizer

    tok_file = os.path.join(path, TOKENIZER_NAME) if os.path.isdir(path) else path
    if not os.path.isfile(tok_file):
        raise FuseError(f"no tokenizer.json at {path}")
    tok = Tokenizer.from_file(tok_file)
    tok.no_padding()
    tok.no_truncation()
    specials, additional = read_special_tokens(os.path.dirname(tok_file), tok.token_to_id)
    ids = special_token_ids(specials, [tok.token_to_id(t) for t in additional])
    return _Tokenizer(tok_file, tok, specials, ids)


class _Parity(NamedTuple):
    texts: List[str]
    length: int
    feeds: Dict[str, np.ndarray]
    batch: int  # rows per run
    reference: np.ndarray  # the formula on the logits graph's output
    vocab: int


def _reference(
    mlm_onnx: str,
    logits_name: str,
    tok: _Tokenizer,
    inputs: List[str],
    *,
    texts: List[str],
    length: int,
    activation: str,
    pooling: str,
    zeroed: List[int],
) -> _Parity:
    """The SPLADE formula on the logits graph's output for the parity texts, batched under the logits
    budget."""
    feeds = _feeds(tok.tok, texts, length, inputs, tok.pad_id)
    batch = parity_batch_size(len(texts), length, tok.tok.get_vocab_size(with_added_tokens=True))
    parts = []
    for i, logits in enumerate(_run_rows(mlm_onnx, logits_name, feeds, batch)):
        mask = feeds["attention_mask"][i * batch : (i + 1) * batch]
        w = splade_numpy(logits, mask, activation=activation, pooling=pooling, zeroed_token_ids=zeroed)
        parts.append(w)
        vocab = int(logits.shape[-1])
    if tok.tok.get_vocab_size(with_added_tokens=True) > vocab:
        size = tok.tok.get_vocab_size()
        raise FuseError(f"the tokenizer has more tokens ({size}) than the graph's logits ({vocab})")
    return _Parity(texts, length, feeds, batch, np.concatenate(parts), vocab)


def _save_fused(fused: Any, model_path: str) -> None:
    onnx = _import_onnx()
    big = fused.ByteSize() > EXTERNAL_DATA_THRESHOLD
    onnx.save_model(
        fused,
        model_path,
        save_as_external_data=big,
        all_tensors_to_one_file=True,
        location=MODEL_NAME + "_data" if big else None,
    )


def _check(model_path: str, parity: _Parity, tolerance: float, scale: float) -> Tuple[float, bool]:
    """``(max |fused - formula|, same support)``; :class:`FuseError` beyond ``tolerance * scale``."""
    got = np.concatenate(_run_rows(model_path, OUTPUT_NAME, parity.feeds, parity.batch))
    err = float(np.max(np.abs(got - parity.reference)))
    support_equal = bool(np.array_equal(got > 0, parity.reference > 0))
    log.info("fuse parity: max |fused - formula| = %.3g, support equal: %s", err, support_equal)
    if not err <= tolerance * scale:
        raise FuseError(
            f"fused graph differs from logits graph + SPLADE formula by {err:.3g} "
            f"(> {tolerance * scale:g}); nothing written"
        )
    return err, support_equal


def fuse(
    mlm_onnx: str,
    out_dir: str,
    *,
    tokenizer: str,
    activation: str = "log1p_relu",
    pooling: str = "max",
    zeroed_token_ids: "Sequence[int] | str" = (),
    query_max_length: int = 64,
    document_max_length: int = 256,
    model_max_length: Optional[int] = None,
    tolerance: float = 1e-4,
    texts: Optional[Sequence[str]] = None,
    overwrite: bool = False,
    source_name: Optional[str] = None,
    architecture: Optional[str] = None,
) -> Manifest:
    """Fuse ``mlm_onnx`` (logits output) with the SPLADE head into an artifact folder ``out_dir``,
    parity-checked on ``texts`` (default: ``formula.PARITY_TEXTS``) at ``formula.parity_length``.

    ``zeroed_token_ids='special'`` zeroes every special token of the tokenizer (OpenSearch's rule).
    ``model_max_length``: the model's window (default ``formula.DEFAULT_MODEL_WINDOW``). Sum pooling's
    tolerance is relative to the largest weight (as in ``splade-onnx export``). Raises
    :class:`~splade_onnx.errors.FuseError`; nothing is written then."""
    onnx = _import_onnx()
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} (known: {', '.join(ACTIVATIONS)})")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r} (known: {', '.join(POOLINGS)})")
    check_out_dir(out_dir, overwrite)
    if not os.path.isfile(mlm_onnx):
        raise FileNotFoundError(f"no such ONNX file: {mlm_onnx}")
    tok = _load_tokenizer(tokenizer)
    zeroed = _zeroed_ids(zeroed_token_ids, tok)
    window = int(model_max_length or DEFAULT_MODEL_WINDOW)
    src = onnx.load(mlm_onnx)  # external data is loaded too
    inputs = _graph_inputs(src.graph)
    parity = _reference(
        mlm_onnx,
        _find_logits_output(src.graph).name,
        tok,
        inputs,
        texts=list(texts or PARITY_TEXTS),
        length=parity_length(document_max_length, window),
        activation=activation,
        pooling=pooling,
        zeroed=zeroed,
    )
    fused = append_splade_head(
        src, activation=activation, pooling=pooling, zeroed_token_ids=zeroed, vocab_size=parity.vocab
    )
    del src
    with staged_dir(out_dir, prefix=".splade-onnx-fuse-") as work:
        model_path = os.path.join(work, MODEL_NAME)
        _save_fused(fused, model_path)
        del fused
        scale = tolerance_scale(parity.reference, pooling)
        err, support_equal = _check(model_path, parity, tolerance, scale)
        shutil.copy(tok.path, os.path.join(work, TOKENIZER_NAME))
        manifest = Manifest(
            source=str(source_name or os.path.abspath(mlm_onnx)),
            architecture=str(architecture or "unknown"),
            vocab_size=parity.vocab,
            inputs=[i for i in GRAPH_INPUTS if i in inputs],
            activation=activation,
            pooling=pooling,
            max_length={
                "query": int(min(query_max_length, window)),
                "document": int(min(document_max_length, window)),
                "model": window,
            },
            special_tokens=tok.specials,
            pad_token_id=tok.pad_id,
            zeroed_token_ids=zeroed,
            model_class="onnx-logits+splade-head",
            opset=_opset(onnx.load(model_path, load_external_data=False)),
            versions=versions(),
            model_sha256=sha256_file(model_path),
            model_bytes=os.path.getsize(model_path),
            parity=_parity_record(parity, err, support_equal, tolerance, scale),
            extra={
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "fused_from": os.path.basename(mlm_onnx),
                "source_sha256": sha256_file(mlm_onnx),
            },
        )
        manifest.write(work)
    return manifest


def _zeroed_ids(zeroed_token_ids: "Sequence[int] | str", tok: _Tokenizer) -> List[int]:
    if isinstance(zeroed_token_ids, str):
        if zeroed_token_ids != "special":
            raise ValueError("zeroed_token_ids must be a list of ids or 'special'")
        return tok.special_ids
    return sorted({int(i) for i in zeroed_token_ids})


def _graph_inputs(graph: Any) -> List[str]:
    inputs = [i.name for i in graph.input]
    if [i for i in inputs if i not in GRAPH_INPUTS] or "input_ids" not in inputs:
        msg = f"unsupported graph inputs {inputs}; expected input_ids, attention_mask[, token_type_ids]"
        raise FuseError(msg)
    return inputs


def _parity_record(
    parity: _Parity,
    err: float,
    support_equal: bool,
    tolerance: float,
    scale: float,
) -> Dict[str, Any]:
    return {
        "max_abs_error": err,
        "tolerance": tolerance,
        "tolerance_scale": scale,
        "texts": len(parity.texts),
        "max_length": parity.length,
        "support_equal": support_equal,
        "reference": REFERENCE,
    }


__all__ = ["fuse", "append_splade_head", "EXTERNAL_DATA_THRESHOLD"]
