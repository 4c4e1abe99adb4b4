"""Torch-free fusion: append the SPLADE head to an ONNX graph that outputs MLM logits ``[batch, seq, vocab]``.

Needs the ``onnx`` package (``pip install 'splade-onnx[fuse]'``); it is imported here only, lazily, never by
``import splade_onnx`` or by :class:`~splade_onnx.Expander` on its normal path.

The appended head: ``mask`` (padding rows get -1e4 added so they never win a max; for sum pooling they are
multiplied by 0), ``ReduceMax``/``ReduceSum`` over the sequence axis, ``Relu``, an exact ``log1p`` (Kahan:
``log(u) * x / (u - 1)`` with ``u = 1 + x``; ONNX has no Log1p), optionally once more for log1p(log1p(relu)), and
the zeroed token ids multiplied by 0. The fused graph is checked against the original logits graph run by
onnxruntime with the SPLADE formula in numpy, on built-in sample texts, before anything is written.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from splade_onnx.errors import FuseError
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

log = logging.getLogger("splade_onnx")

MASK_BIG = 1.0e4
EXTERNAL_DATA_THRESHOLD = 1_800_000_000  # protobuf's 2 GB limit, with margin

SAMPLE_TEXTS = [
    "what is splade?",
    "a",
    "SPLADE expands a text into a sparse vector over the vocabulary; each weight is log(1 + relu(logit)).",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "희소 검색 모델은 어휘 공간에서 문서를 표현합니다. 한국어 문장도 잘 처리되어야 합니다.",
    "Emoji 😀😃 and mixed scripts: Ελληνικά, русский, العربية, 日本語, हिन्दी.",
    "Aspirin inhibits cyclooxygenase enzymes, reducing prostaglandin synthesis and thereby inflammation. " * 6,
    "Q: 2+2? A: 4",
]


def _import_onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("`splade-onnx fuse` needs the onnx package: pip install 'splade-onnx[fuse]'") from e
    return onnx, TensorProto, helper, numpy_helper


def _log1p_act(x: np.ndarray, activation: str) -> np.ndarray:
    y = np.log1p(np.maximum(x.astype(np.float64), 0.0))
    if activation == "log1p_log1p_relu":
        y = np.log1p(y)
    return y


def splade_numpy(logits: np.ndarray, mask: np.ndarray, *, activation: str, pooling: str,
                 zeroed_token_ids: Sequence[int] = ()) -> np.ndarray:
    """The formula, in float64: ``pool over real tokens of act(logits)``, then zeroed ids set to 0."""
    act = _log1p_act(logits, activation) * mask[..., None].astype(np.float64)
    w = act.max(axis=1) if pooling == "max" else act.sum(axis=1)
    if len(zeroed_token_ids):
        w[:, list(zeroed_token_ids)] = 0.0
    return w.astype(np.float32)


def _load_tokenizer(path: str):
    from tokenizers import Tokenizer

    tok_file = os.path.join(path, TOKENIZER_NAME) if os.path.isdir(path) else path
    if not os.path.isfile(tok_file):
        raise FuseError(f"no tokenizer.json at {path}")
    return tok_file, Tokenizer.from_file(tok_file)


def _special_tokens(tok_file: str, tok) -> Dict[str, Dict[str, Any]]:
    """Named special tokens from tokenizer_config.json / special_tokens_map.json next to tokenizer.json when present,
    else guessed from the added special tokens' spelling."""
    folder = os.path.dirname(tok_file)
    names: Dict[str, str] = {}
    for fname in ("special_tokens_map.json", "tokenizer_config.json"):
        p = os.path.join(folder, fname)
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                d = json.load(f)
            for k in ("cls", "sep", "pad", "unk", "mask", "bos", "eos"):
                v = d.get(f"{k}_token")
                if isinstance(v, dict):
                    v = v.get("content")
                if isinstance(v, str) and k not in names:
                    names[k] = v
    guesses = {"cls": ["[CLS]", "<s>", "<cls>"], "sep": ["[SEP]", "</s>", "<sep>"], "pad": ["[PAD]", "<pad>"],
               "unk": ["[UNK]", "<unk>"], "mask": ["[MASK]", "<mask>"]}
    for k, cands in guesses.items():
        if k not in names:
            for c in cands:
                if tok.token_to_id(c) is not None:
                    names[k] = c
                    break
    out = {}
    for k, t in names.items():
        i = tok.token_to_id(t)
        if i is not None:
            out[k] = {"token": t, "id": int(i)}
    return out


def _find_logits_output(graph) -> Any:
    outs = list(graph.output)
    for o in outs:
        if o.name == "logits":
            return o
    for o in outs:
        dims = o.type.tensor_type.shape.dim
        if len(dims) == 3:
            return o
    raise FuseError(f"no [batch, seq, vocab] logits output among {[o.name for o in outs]}")


def _opset(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    raise FuseError("the graph imports no default-domain opset")


def append_splade_head(model, *, activation: str, pooling: str, zeroed_token_ids: Sequence[int], vocab_size: int):
    """Return a copy of ``model`` whose only output is ``sparse_weights [batch, vocab]``."""
    onnx, TensorProto, helper, numpy_helper = _import_onnx()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    opset = _opset(m)
    if opset < 13:
        raise FuseError(f"opset {opset} < 13 is not supported (Unsqueeze/ReduceSum axes as inputs); re-export the "
                        "logits graph with opset >= 13")
    logits = _find_logits_output(g).name
    names = [i.name for i in g.input]
    if "attention_mask" not in names:
        raise FuseError(f"the graph has no attention_mask input (inputs: {names})")
    P = "splade_head/"
    nodes: List[Any] = []
    inits = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), P + "axis1"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), P + "axis_last"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), P + "one"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), P + "zero"),
        numpy_helper.from_array(np.array(MASK_BIG, dtype=np.float32), P + "big"),
    ]

    def n(op, inputs, out, **attrs):
        nodes.append(helper.make_node(op, inputs, [P + out], name=P + out, **attrs))
        return P + out

    def log1p(x, tag):
        u = n("Add", [P + "one", x], f"{tag}_u")
        d = n("Sub", [u, P + "one"], f"{tag}_d")
        is0 = n("Equal", [d, P + "zero"], f"{tag}_is0")
        safe = n("Where", [is0, P + "one", d], f"{tag}_safe")
        ratio = n("Div", [x, safe], f"{tag}_ratio")
        lg = n("Log", [u], f"{tag}_log")
        prod = n("Mul", [lg, ratio], f"{tag}_prod")
        return n("Where", [is0, x, prod], f"{tag}_out")

    def act(x):
        y = log1p(n("Relu", [x], "relu"), "l1")
        if activation == "log1p_log1p_relu":
            y = log1p(y, "l2")
        return y

    lg32 = n("Cast", [logits], "logits_f32", to=TensorProto.FLOAT)
    maskf = n("Cast", ["attention_mask"], "mask_f32", to=TensorProto.FLOAT)
    mask3 = n("Unsqueeze", [maskf, P + "axis_last"], "mask3")  # [B, S, 1]
    if pooling == "max":
        pen = n("Mul", [n("Sub", [mask3, P + "one"], "mask_m1"), P + "big"], "penalty")  # 0 real, -1e4 padding
        masked = n("Add", [lg32, pen], "masked")
        if opset >= 18:
            pooled = n("ReduceMax", [masked, P + "axis1"], "pooled", keepdims=0)
        else:
            pooled = n("ReduceMax", [masked], "pooled", axes=[1], keepdims=0)
        w = act(pooled)
    else:
        a = n("Mul", [act(lg32), mask3], "act_masked")
        w = n("ReduceSum", [a, P + "axis1"], "pooled", keepdims=0)
    if len(zeroed_token_ids):
        keep = np.ones(vocab_size, dtype=np.float32)
        keep[list(zeroed_token_ids)] = 0.0
        inits.append(numpy_helper.from_array(keep, P + "keep"))
        w = n("Mul", [w, P + "keep"], "zeroed")
    nodes.append(helper.make_node("Identity", [w], [OUTPUT_NAME], name=P + "output"))
    g.node.extend(nodes)
    g.initializer.extend(inits)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", vocab_size]))
    return m


def _feeds(tok, texts: Sequence[str], max_length: int, inputs: Sequence[str], pad_id: int) -> Dict[str, np.ndarray]:
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


def _session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


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
    """Fuse ``mlm_onnx`` (logits output) with the SPLADE head into an artifact folder ``out_dir``, parity-checked.

    ``zeroed_token_ids='special'`` zeroes every special token of the tokenizer (OpenSearch's rule)."""
    onnx, _, _, _ = _import_onnx()
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r} (known: {', '.join(ACTIVATIONS)})")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r} (known: {', '.join(POOLINGS)})")
    check_out_dir(out_dir, overwrite)
    if not os.path.isfile(mlm_onnx):
        raise FileNotFoundError(f"no such ONNX file: {mlm_onnx}")
    tok_file, tok = _load_tokenizer(tokenizer)
    tok.no_padding()
    tok.no_truncation()
    specials = _special_tokens(tok_file, tok)
    if isinstance(zeroed_token_ids, str):
        if zeroed_token_ids != "special":
            raise ValueError("zeroed_token_ids must be a list of ids or 'special'")
        zeroed = sorted({v["id"] for v in specials.values()})
    else:
        zeroed = sorted({int(i) for i in zeroed_token_ids})
    pad_id = specials.get("pad", {}).get("id", 0)

    src = onnx.load(mlm_onnx)  # external data is loaded too
    inputs = [i.name for i in src.graph.input]
    unknown = [i for i in inputs if i not in ("input_ids", "attention_mask", "token_type_ids")]
    if unknown or "input_ids" not in inputs:
        raise FuseError(f"unsupported graph inputs {inputs}; expected input_ids, attention_mask[, token_type_ids]")
    sample = list(texts or SAMPLE_TEXTS)
    parity_len = min(document_max_length if document_max_length >= 64 else 128, model_max_length or 512)
    feeds = _feeds(tok, sample, parity_len, inputs, pad_id)
    logits_name = _find_logits_output(src.graph).name
    ref_logits = _session(mlm_onnx).run([logits_name], feeds)[0]
    vocab = int(ref_logits.shape[-1])
    if tok.get_vocab_size(with_added_tokens=True) > vocab:
        raise FuseError(f"the tokenizer has more tokens ({tok.get_vocab_size()}) than the graph's logits ({vocab})")
    ref = splade_numpy(ref_logits, feeds["attention_mask"], activation=activation, pooling=pooling,
                       zeroed_token_ids=zeroed)
    del ref_logits
    fused = append_splade_head(src, activation=activation, pooling=pooling, zeroed_token_ids=zeroed,
                               vocab_size=vocab)
    del src

    with staged_dir(out_dir, prefix=".splade-onnx-fuse-") as work:
        model_path = os.path.join(work, MODEL_NAME)
        big = fused.ByteSize() > EXTERNAL_DATA_THRESHOLD
        onnx.save_model(fused, model_path, save_as_external_data=big, all_tensors_to_one_file=True,
                        location=MODEL_NAME + "_data" if big else None)
        del fused
        got = _session(model_path).run([OUTPUT_NAME], feeds)[0]
        err = float(np.max(np.abs(got - ref)))
        support_equal = bool(np.array_equal(got > 0, ref > 0))
        log.info("fuse parity: max |fused - formula| = %.3g, support equal: %s", err, support_equal)
        if not err <= tolerance:
            raise FuseError(f"fused graph differs from logits graph + SPLADE formula by {err:.3g} (> {tolerance:g}); "
                            "nothing written")
        shutil.copy(tok_file, os.path.join(work, TOKENIZER_NAME))
        model_max = int(model_max_length or 512)
        manifest = Manifest(
            source=str(source_name or os.path.abspath(mlm_onnx)),
            architecture=str(architecture or "unknown"),
            vocab_size=vocab,
            inputs=[i for i in ("input_ids", "attention_mask", "token_type_ids") if i in inputs],
            activation=activation,
            pooling=pooling,
            max_length={"query": int(min(query_max_length, model_max)),
                        "document": int(min(document_max_length, model_max)), "model": model_max},
            special_tokens=specials,
            pad_token_id=int(pad_id),
            zeroed_token_ids=zeroed,
            model_class="onnx-logits+splade-head",
            opset=_opset(onnx.load(model_path, load_external_data=False)),
            versions=_versions(),
            model_sha256=sha256_file(model_path),
            model_bytes=os.path.getsize(model_path),
            parity={
                "max_abs_error": err,
                "tolerance": tolerance,
                "texts": len(sample),
                "max_length": parity_len,
                "support_equal": support_equal,
                "reference": "the source logits ONNX run by onnxruntime + numpy log1p(relu) masked pooling",
            },
            extra={"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   "fused_from": os.path.basename(mlm_onnx), "source_sha256": sha256_file(mlm_onnx)},
        )
        manifest.write(work)
    return manifest


def _versions() -> Dict[str, str]:
    import onnx
    import onnxruntime

    from splade_onnx import __version__

    return {"splade_onnx": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def read_model_max_length(folder: str) -> Optional[int]:
    """The window a checkpoint folder declares (config.json max_position_embeddings, tokenizer_config.json
    model_max_length), or ``None``."""
    best: Optional[int] = None
    p = os.path.join(folder, "config.json")
    if os.path.isfile(p):
        with open(p, encoding="utf-8") as f:
            c = json.load(f)
        mp = c.get("max_position_embeddings")
        if isinstance(mp, int) and mp > 0:
            best = mp - 2 if c.get("model_type") in ("roberta", "xlm-roberta", "camembert") else mp
    p = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(p):
        with open(p, encoding="utf-8") as f:
            t = json.load(f).get("model_max_length")
        if isinstance(t, int) and 0 < t < (best or 1 << 30):
            best = t
    return best
