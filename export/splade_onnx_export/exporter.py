"""Export a Hugging Face masked-LM checkpoint to a fused SPLADE ONNX artifact.

The graph computes ``act(max over real tokens of logits)`` directly: the MLM decoder's input is taken from the model
(decoder replaced by identity) and the decoder product is done here. For max pooling, padded rows of that input are
replaced by a copy of the text's first real token (a duplicate cannot change a max, so padding never wins it), which is
``hidden``-wide work only, never an extra pass over ``[batch, seq, vocab]``. The bias is added after the max (it does
not depend on the token), then relu and an exact log1p run on ``[batch, vocab]`` only. Sum pooling masks the
activated logits.
"""
from __future__ import annotations

import copy
import datetime as _dt
import inspect
import logging
import os
import warnings
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from splade_onnx.errors import ExportParityError
from splade_onnx.artifact.manifest import (
    MODEL_DATA_NAME,
    MODEL_NAME,
    OUTPUT_NAME,
    TOKENIZER_NAME,
    Manifest,
    check_out_dir,
    sha256_file,
    staged_dir,
)

from .reference import splade_reference
from .samples import PARITY_TEXTS

log = logging.getLogger("splade_onnx_export")

MASK_BIG = 1.0e4
DEFAULT_OPSET = 17


def _log1p_exact(x: torch.Tensor) -> torch.Tensor:
    # ONNX has no Log1p; log(1 + x) loses tiny x (and so the non-zero support). Kahan's trick is exact to rounding.
    u = 1.0 + x
    d = u - 1.0
    safe_d = torch.where(d == 0, torch.ones_like(d), d)
    return torch.where(d == 0, x, torch.log(u) * (x / safe_d))


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    y = _log1p_exact(torch.relu(x))
    if activation == "log1p_log1p_relu":
        y = _log1p_exact(y)
    return y


def _replace_module(root: nn.Module, target: nn.Module, new: nn.Module) -> None:
    for name, mod in root.named_modules():
        if mod is target and name:
            parent_name, _, attr = name.rpartition(".")
            setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)
            return
    raise ValueError("output embeddings not found among the model's modules")


# Vocabulary columns per head slice (see FusedSplade): [4 x 256 tokens x 2048] float32 is 8 MB, within the L3 cache.
HEAD_CHUNK = 2048


class FusedSplade(nn.Module):
    """``(input_ids, attention_mask[, token_type_ids]) -> [batch, vocab]`` SPLADE weights."""

    def __init__(
        self,
        mlm: nn.Module,
        *,
        activation: str,
        pooling: str,
        use_token_type_ids: bool,
        zeroed_token_ids: Sequence[int] = (),
        head_chunk: int = HEAD_CHUNK,
    ) -> None:
        super().__init__()
        mlm = copy.deepcopy(mlm)
        try:  # the eager attention pattern is the one onnxruntime's transformer optimizer fuses into Attention
            mlm.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - older transformers or a model without the switch: keep its default
            pass
        decoder = mlm.get_output_embeddings()
        if not isinstance(decoder, nn.Linear):
            raise TypeError(f"unsupported MLM decoder {type(decoder).__name__}; expected nn.Linear")
        weight = decoder.weight.detach().float()  # [V, H]
        bias = decoder.bias.detach().float() if decoder.bias is not None else torch.zeros(weight.shape[0])
        _replace_module(mlm, decoder, nn.Identity())
        self.mlm = mlm
        # [H, V]: the decoder product. Padding never reaches the max: padded rows of its input are replaced by a copy
        # of the text's first real token (exact, since max(S) == max(S + duplicates of a member of S)), which keeps
        # K = H for the GEMM and leaves no -1e4 outlier to wreck dynamic int8 quantisation of the head input.
        self.register_buffer("w_head", weight.t().contiguous())
        # Max pooling runs the head in vocabulary slices of `head_chunk` columns, each followed by its own max over
        # tokens: the [B, S, chunk] product then stays in cache between the GEMM that writes it and the max that
        # reads it, instead of a [B, S, V] buffer streamed through memory (measured on splade-tiny, 4 x 256 tokens:
        # head -17% fp32, -37% int8). Exact: the max over the whole row is the concatenation of the slices' maxima.
        # Slices are of equal width, at most head_chunk: a width of exactly 2048 floats puts the rows the max reads 8 KB
        # apart, a power-of-two stride that thrashes the cache sets (measured: the 15 maxima then cost 44% more).
        vocab = weight.shape[0]
        k = -(-vocab // head_chunk)
        cuts = [round(i * vocab / k) for i in range(k + 1)]
        self.head_chunks = list(zip(cuts[:-1], cuts[1:]))
        for i, (a, b) in enumerate(self.head_chunks):
            self.register_buffer(f"w_head_{i}", weight[a:b].t().contiguous())
        self.register_buffer("bias", bias.contiguous())
        keep = torch.ones(weight.shape[0])
        if len(zeroed_token_ids):
            keep[list(zeroed_token_ids)] = 0.0
        self.register_buffer("keep", keep)
        self.has_zeroed = bool(len(zeroed_token_ids))
        self.activation = activation
        self.pooling = pooling
        self.use_token_type_ids = use_token_type_ids

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs: Dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_type_ids:
            kwargs["token_type_ids"] = token_type_ids
        h = self.mlm(**kwargs).logits  # decoder input, [B, S, H]
        if self.pooling == "max":
            real = attention_mask.unsqueeze(-1) > 0  # [B, S, 1]
            first = torch.argmax(attention_mask, dim=1)  # [B]: the first real token (right or left padding)
            h_first = torch.gather(h, 1, first.view(-1, 1, 1).expand(-1, 1, h.shape[-1]))  # [B, 1, H]
            h = torch.where(real, h, h_first)  # [B, S, H]: only H-wide work, never [B, S, V]
            mx = torch.cat([torch.matmul(h, getattr(self, f"w_head_{i}")).max(dim=1).values
                            for i in range(len(self.head_chunks))], dim=-1)  # [B, V], never [B, S, V] at once
            w = _activate(mx + self.bias, self.activation)
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            w = (_activate(torch.matmul(h, self.w_head) + self.bias, self.activation) * m).sum(dim=1)
        if self.has_zeroed:
            w = w * self.keep
        return w


def _uses_token_type_ids(mlm: nn.Module) -> bool:
    params = inspect.signature(mlm.forward).parameters
    tv = getattr(mlm.config, "type_vocab_size", 0) or 0
    return "token_type_ids" in params and tv > 1


def _versions() -> Dict[str, str]:
    import onnx
    import onnxruntime
    import transformers

    import splade_onnx

    return {
        "splade_onnx": splade_onnx.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _special_tokens(tokenizer) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for name in ("cls", "sep", "pad", "unk", "mask", "bos", "eos"):
        tok = getattr(tokenizer, f"{name}_token", None)
        if tok is not None:
            out[name] = {"token": str(tok), "id": int(tokenizer.convert_tokens_to_ids(str(tok)))}
    return out


def _save_tokenizer(tokenizer, dest: str) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise TypeError("a fast (tokenizers-backed) tokenizer is required; the source has none")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(backend.to_str())
    tok.no_truncation()
    tok.no_padding()
    tok.save(dest)


def externalize_weights(model_path: str, feeds: Dict[str, np.ndarray], expected: np.ndarray) -> None:
    """Rewrite ``model_path`` with its weights in ``model.onnx_data`` beside it (ONNX external data, one file), and
    check that onnxruntime gives bit-identical output from the new pair. onnxruntime maps external weights instead of
    parsing them out of the protobuf: session creation on splade-tiny drops from ~80 to ~35 ms."""
    import onnx

    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    folder = os.path.dirname(os.path.abspath(model_path))
    graph_only = onnx.load(model_path, load_external_data=False)
    old_files = {os.path.join(folder, e.value) for t in _get_all_tensors(graph_only) if uses_external_data(t)
                 for e in t.external_data if e.key == "location"}
    del graph_only
    model = onnx.load(model_path)  # pulls in any external data torch.onnx.export wrote (models over 2 GB)
    tmp = model_path + ".tmp"
    onnx.save_model(model, tmp, save_as_external_data=True, all_tensors_to_one_file=True, location=MODEL_DATA_NAME,
                    size_threshold=1024)
    del model
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(os.path.join(folder, MODEL_DATA_NAME), 0o666 & ~umask)  # onnx writes it owner-only
    os.replace(tmp, model_path)
    for path in old_files - {os.path.join(folder, MODEL_DATA_NAME)}:  # now all inside model.onnx_data
        if os.path.isfile(path):
            os.remove(path)
    got = run_onnx(model_path, feeds)
    if not np.array_equal(got, expected):
        raise ExportParityError("the graph with external weights does not reproduce the graph it was written from")


def run_onnx(model_path: str, feeds: Dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    return sess.run([OUTPUT_NAME], {k: v for k, v in feeds.items() if k in names})[0]


def _onnx_feeds(tokenizer, texts: Sequence[str], max_length: int, inputs: Sequence[str]) -> Dict[str, np.ndarray]:
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {k: np.asarray(enc[k], dtype=np.int64) for k in inputs if k in enc}
    if "token_type_ids" in inputs and "token_type_ids" not in feeds:
        feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
    return feeds


def export(
    source: str,
    out_dir: str,
    *,
    revision: Optional[str] = None,
    opset: int = DEFAULT_OPSET,
    activation: Optional[str] = None,
    pooling: Optional[str] = None,
    query_max_length: Optional[int] = None,
    document_max_length: Optional[int] = None,
    zeroed_token_ids: "Sequence[int] | str | None" = None,
    tolerance: float = 1e-4,
    parity_texts: Optional[Sequence[str]] = None,
    overwrite: bool = False,
    source_name: Optional[str] = None,
    optimize: bool = True,
    quantize: Optional[str] = None,
    precision: str = "fp32",
    fp16_tolerance: Optional[float] = None,
    head_layout: Optional[str] = None,
) -> Manifest:
    """Export ``source`` (a local folder or hub id) to ``out_dir`` and verify it against the torch reference.

    The artifact is built in a temporary folder next to ``out_dir`` and moved into place only once parity holds, so a
    failed export never leaves a half-written artifact that looks valid.

    ``activation``, ``pooling``, the lengths and ``zeroed_token_ids`` left as ``None`` are taken, in this order, from
    the source's sentence-transformers SparseEncoder config (``modules.json`` + ``SpladePooling``), the registry
    entry of a known model id (``splade_onnx.list_models()``), or the SPLADE defaults (log1p_relu, max, 64/256,
    nothing zeroed). ``zeroed_token_ids="special"`` zeroes the tokenizer's special tokens (OpenSearch's rule).
    ``head_layout`` (max pooling): ``None`` picks ``"vocab-major"`` for fp32/fp16 (faster, see head_layout.py) and
    ``"token-major"`` for int8 / int8-exact, which quantise token-major slices; ``"token-major"`` can be forced.
    """
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    from .sources import resolve_head

    head = resolve_head(
        source, revision=revision, source_name=source_name, activation=activation, pooling=pooling,
        query_max_length=query_max_length, document_max_length=document_max_length,
        zeroed_token_ids=zeroed_token_ids,
    )
    source = head["model_path"]
    activation, pooling = head["activation"], head["pooling"]
    query_max_length, document_max_length = head["query_max_length"], head["document_max_length"]

    check_out_dir(out_dir, overwrite)

    # optimize: store onnxruntime's optimised graph (fusions baked in at export time, see optimize.py).
    # quantize="int8": the fp32 graph is checked against `tolerance` first, then quantised; the int8 graph's agreement
    # with the torch reference is recorded in the manifest's `quantization` field (retrieval quality: benchmarks/).
    # quantize="int8-exact": the head runs as an int8 screen and every entry that can be non-zero is recomputed in
    # fp32 (screen.py): the fp32 graph's weights at close to int8 speed; max pooling only.
    if quantize is not None and quantize not in ("int8", "int8-exact"):
        raise ValueError(f"unknown quantize {quantize!r} (known: int8, int8-exact)")
    # precision="fp16": after the fp32 graph passed `tolerance`, it is converted to float16 (IO kept float32, see
    # fp16.py) and re-checked against the torch reference with the looser `fp16_tolerance` (default FP16_TOLERANCE).
    if head_layout not in (None, "token-major", "vocab-major"):
        raise ValueError(f"unknown head_layout {head_layout!r} (known: token-major, vocab-major)")
    if head_layout == "vocab-major" and quantize:
        raise ValueError("quantize works on the token-major head: leave head_layout unset")
    if head_layout == "vocab-major" and pooling != "max":
        raise ValueError("head_layout='vocab-major' needs max pooling (the head slices are max-pooled)")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"unknown precision {precision!r} (known: fp32, fp16)")
    if precision == "fp16" and quantize:
        raise ValueError("precision='fp16' and quantize are exclusive")
    config = AutoConfig.from_pretrained(source, revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(source, revision=revision, use_fast=True)
    mlm = AutoModelForMaskedLM.from_pretrained(source, revision=revision, dtype=torch.float32)
    mlm.eval()
    zeroed_token_ids = head["zeroed_ids"](tokenizer)
    model_max = int(min(getattr(config, "max_position_embeddings", 512) or 512, 1 << 20))
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        model_max -= 2  # positions are offset by padding_idx + 1
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < model_max:
        model_max = tok_max

    use_tti = _uses_token_type_ids(mlm)
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if use_tti else [])
    wrapper = FusedSplade(
        mlm, activation=activation, pooling=pooling, use_token_type_ids=use_tti, zeroed_token_ids=zeroed_token_ids
    ).eval()

    texts = list(parity_texts or PARITY_TEXTS)
    parity_len = min(model_max, max(document_max_length, 128), 512)  # bounded: [texts x len x vocab] logits
    ref = splade_reference(
        mlm, tokenizer, texts, max_length=parity_len, activation=activation, pooling=pooling,
        zeroed_token_ids=zeroed_token_ids, batch_size=max(2, min(len(texts), (1 << 29) // (parity_len * int(config.vocab_size) * 4))),
    )

    with staged_dir(out_dir, prefix=".splade-onnx-export-") as work:
        model_path = os.path.join(work, MODEL_NAME)
        dummy = _onnx_feeds(tokenizer, texts[:3], 32, inputs)
        args = tuple(torch.from_numpy(dummy[k]) for k in inputs)
        dynamic_axes = {k: {0: "batch", 1: "sequence"} for k in inputs}
        dynamic_axes[OUTPUT_NAME] = {0: "batch"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about constant shapes; parity below is the real check
            torch.onnx.export(
                wrapper,
                args,
                model_path,
                input_names=inputs,
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        opt_info: Optional[Dict[str, Any]] = None
        quant_info: Optional[Dict[str, Any]] = None
        if optimize:
            from .optimize import optimize_graph

            raw_path = model_path + ".raw"
            os.replace(model_path, raw_path)
            opt_info = optimize_graph(raw_path, model_path, config)
            os.remove(raw_path)
        layout: Dict[str, Any] = ({"layout": "token-major", "chunks": len(wrapper.head_chunks),
                                   "chunk_columns": max(b - a for a, b in wrapper.head_chunks)}
                                  if pooling == "max" else {"chunks": 1})
        if pooling == "max" and quantize is None and head_layout != "token-major":
            # the plain fp32/fp16 graph takes the vocabulary-major head (head_layout.py: same sums, a faster max);
            # int8 and int8-exact quantise the token-major slices
            from .head_layout import vocab_major_head

            vm_path = model_path + ".vm"
            layout = vocab_major_head(model_path, vm_path)
            os.replace(vm_path, model_path)
        _save_tokenizer(tokenizer, os.path.join(work, TOKENIZER_NAME))

        got = run_onnx(model_path, _onnx_feeds(tokenizer, texts, parity_len, inputs))
        err = float(np.max(np.abs(got - ref)))
        support_equal = bool(np.array_equal(got > 0, ref > 0))
        log.info("parity: max |onnx - torch| = %.3g over %d texts, support equal: %s", err, len(texts), support_equal)
        # sum pooling adds up to `parity_len` float32 terms: its rounding grows with the weights, so the tolerance is
        # relative to the largest weight there (max pooling: absolute, the weights are single activations)
        tol_scale = max(1.0, float(np.max(np.abs(ref)))) if pooling == "sum" else 1.0
        if not (err <= tolerance * tol_scale):
            raise ExportParityError(
                f"exported graph differs from the torch reference by {err:.3g} (> {tolerance * tol_scale:g}); "
                "artifact not written"
            )
        if quantize == "int8-exact":
            from .screen import screen_head

            if pooling != "max":
                raise ValueError("quantize='int8-exact' needs max pooling (the screen bounds a max over tokens)")
            s_path = model_path + ".screen"
            quant_info = screen_head(model_path, s_path)
            got_s = run_onnx(s_path, _onnx_feeds(tokenizer, texts, parity_len, inputs))
            os.replace(s_path, model_path)
            quant_info["fp32_graph_parity"] = err
            quant_info["max_abs_diff_vs_fp32_graph"] = float(np.max(np.abs(got_s - got)))
            quant_info["support_equal_to_fp32_graph"] = bool(np.array_equal(got_s > 0, got > 0))
            err = float(np.max(np.abs(got_s - ref)))
            support_equal = bool(np.array_equal(got_s > 0, ref > 0))
            if not (err <= tolerance * tol_scale):
                raise ExportParityError(f"int8-exact graph differs from the torch reference by {err:.3g}; "
                                        "artifact not written")
            log.info("int8-exact: max |onnx - torch| = %.3g", err)
        elif quantize:
            from .optimize import int8_agreement, quantize_int8

            q_path = model_path + ".int8"
            quant_info = quantize_int8(model_path, q_path)
            got_q = run_onnx(q_path, _onnx_feeds(tokenizer, texts, parity_len, inputs))
            quant_info["agreement_with_torch_fp32"] = int8_agreement(got_q, ref)
            quant_info["fp32_graph_parity"] = err
            os.replace(q_path, model_path)
            err = float(np.max(np.abs(got_q - ref)))
            support_equal = bool(np.array_equal(got_q > 0, ref > 0))
            log.info("int8: %s", quant_info["agreement_with_torch_fp32"])
        if precision == "fp16":
            from .fp16 import FP16_TOLERANCE, convert_fp16

            tol16 = FP16_TOLERANCE if fp16_tolerance is None else fp16_tolerance
            h_path = model_path + ".fp16"
            quant_info = convert_fp16(model_path, h_path)
            got_h = run_onnx(h_path, _onnx_feeds(tokenizer, texts, parity_len, inputs))
            err16 = float(np.max(np.abs(got_h - ref)))
            quant_info.update({"fp32_graph_parity": err, "max_abs_error_vs_torch_fp32": err16, "tolerance": tol16,
                               "support_mismatches": int(np.sum((got_h > 0) != (ref > 0))),
                               "support_size": int(np.sum(ref > 0))})
            if not (err16 <= tol16):
                raise ExportParityError(f"fp16 graph differs from the torch reference by {err16:.3g} "
                                        f"(> {tol16:g}); artifact not written")
            os.replace(h_path, model_path)
            err, support_equal = err16, bool(np.array_equal(got_h > 0, ref > 0))
            log.info("fp16: max |onnx - torch| = %.3g", err16)

        final_feeds = _onnx_feeds(tokenizer, texts, parity_len, inputs)
        externalize_weights(model_path, final_feeds, run_onnx(model_path, final_feeds))
        data_path = os.path.join(work, MODEL_DATA_NAME)

        manifest = Manifest(
            source=str(source_name or source),
            revision=revision,
            architecture=str(config.model_type),
            model_class=type(mlm).__name__,
            vocab_size=int(ref.shape[1]),
            inputs=inputs,
            activation=activation,
            pooling=pooling,
            max_length={"query": int(min(query_max_length, model_max)),
                        "document": int(min(document_max_length, model_max)), "model": int(model_max)},
            special_tokens=_special_tokens(tokenizer),
            pad_token_id=int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
            zeroed_token_ids=[int(i) for i in zeroed_token_ids],
            opset=opset,
            versions=_versions(),
            files={"model": MODEL_NAME, "model_data": MODEL_DATA_NAME, "tokenizer": TOKENIZER_NAME},
            model_sha256=sha256_file(model_path),
            model_bytes=os.path.getsize(model_path),
            model_data_sha256=sha256_file(data_path),
            model_data_bytes=os.path.getsize(data_path),
            parity={
                "max_abs_error": err,
                "tolerance": tolerance,
                "tolerance_scale": tol_scale,  # sum pooling: relative to the largest weight
                "texts": len(texts),
                "max_length": parity_len,
                "support_equal": support_equal,
                "reference": "transformers AutoModelForMaskedLM, log1p(relu(logits)) masked max over tokens",
            },
            quantization=quant_info,
            extra={"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   "optimization": opt_info,
                   "head": head["provenance"],
                   "head_layout": layout,
                   "attn_implementation": getattr(wrapper.mlm.config, "_attn_implementation", None)},
        )
        manifest.write(work)
    return manifest
