"""Export a Hugging Face masked-LM checkpoint to a fused SPLADE ONNX artifact: one pipeline of named steps.

    load      checkpoint.py   config, fast tokenizer and masked-LM model; the head settings from sources.py
    wrap      wrapper.py      FusedSplade: the model with the SPLADE head fused into its graph
    export    (here)          torch.onnx.export of the wrapper
    optimise  optimize.py     onnxruntime's fusions baked into the file
    layout    variants.py     the vocabulary-major head (head_layout.py) for fp32/fp16
    verify    verify.py       the fp32 graph against the torch reference on the parity texts
    variant   variants.py     int8 (int8.py), int8-exact (int8_exact.py) or fp16 (fp16.py), each verified
    write     (here)          weights to model.onnx_data, tokenizer.json, the manifest; moved into place

The artifact is built in a temporary folder next to ``out_dir`` and moved into place only once parity holds,
so a failed export never leaves a half-written artifact that looks valid.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import warnings
from typing import Any, Dict, Optional, Sequence

import torch

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
from splade_onnx.build.formula import versions
from splade_onnx.errors import ExportError

from .checkpoint import Checkpoint, load_checkpoint, save_tokenizer
from .graph import externalize_weights
from .optimize import optimize_graph
from .options import plan_export
from .sources import resolve_head
from .variants import apply_head_layout, apply_variant
from .verify import Measurement, ParityCheck, prepare_parity
from .wrapper import FusedSplade

log = logging.getLogger("splade_onnx_export")

DEFAULT_OPSET = 17


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

    ``activation``, ``pooling``, the lengths and ``zeroed_token_ids`` left as ``None`` are taken, in this
    order, from the source's sentence-transformers SparseEncoder config (``modules.json`` +
    ``SpladePooling``), the registry entry of a known model id (``splade_onnx.list_models()``), or the SPLADE
    defaults (log1p_relu, max, 64/256, nothing zeroed). ``zeroed_token_ids="special"`` zeroes the tokenizer's
    special tokens (OpenSearch's rule).

    ``optimize``: store onnxruntime's optimised graph (fusions baked in at export time, see optimize.py).
    ``quantize="int8"``: the fp32 graph is checked against ``tolerance`` first, then quantised; the int8
    graph's agreement with the torch reference is recorded in the manifest's ``quantization`` field.
    ``quantize="int8-exact"``: the head runs as an int8 screen and every entry that can be non-zero is
    recomputed in fp32 (int8_exact.py): the fp32 graph's weights at close to int8 speed; max pooling only.
    ``precision="fp16"``: after the fp32 graph passed ``tolerance``, it is converted to float16 (IO kept
    float32, see fp16.py) and re-checked against the torch reference with the looser ``fp16_tolerance``
    (default ``fp16.FP16_TOLERANCE``). ``head_layout`` (max pooling): ``None`` picks ``"vocab-major"`` for
    fp32/fp16 (faster, see head_layout.py) and ``"token-major"`` for int8 / int8-exact, which quantise
    token-major slices; ``"token-major"`` can be forced.

    Raises :class:`~splade_onnx.errors.ExportError` (bad source, unsupported architecture, options that do not
    go together: ``options.ExportOptionError``, also a ``ValueError``) or its subclass ``ExportParityError``;
    nothing is written then.
    """
    head = resolve_head(
        source,
        revision=revision,
        source_name=source_name,
        activation=activation,
        pooling=pooling,
        query_max_length=query_max_length,
        document_max_length=document_max_length,
        zeroed_token_ids=zeroed_token_ids,
    )
    check_out_dir(out_dir, overwrite)
    plan = plan_export(
        pooling=head["pooling"],
        optimize=optimize,
        quantize=quantize,
        precision=precision,
        head_layout=head_layout,
        fp16_tolerance=fp16_tolerance,
    )
    ckpt = load_checkpoint(head["model_path"], revision=revision, zeroed_ids=head["zeroed_ids"])
    wrapper = wrap(ckpt, head)
    check = prepare_parity(ckpt, head, tolerance=tolerance, texts=parity_texts)

    with staged_dir(out_dir, prefix=".splade-onnx-export-") as work:
        model_path = os.path.join(work, MODEL_NAME)
        export_onnx(wrapper, ckpt, model_path, opset, check.texts[:3])
        opt_info = optimize_in_place(model_path, ckpt.config) if plan.optimize else None
        layout = apply_head_layout(model_path, wrapper.head_chunks, head["pooling"], plan.vocab_major)
        save_tokenizer(ckpt.tokenizer, os.path.join(work, TOKENIZER_NAME))  # int8 calibrates with it
        fp32 = check.require(check.measure(model_path), "exported graph")
        quant_info, final = apply_variant(plan, model_path, check, fp32)
        externalize_weights(model_path, check.feeds)
        manifest = build_manifest(
            ckpt,
            head,
            work,
            check,
            final,
            source=str(source_name or head["model_path"]),
            opset=opset,
            quantization=quant_info,
            extra={
                "optimization": opt_info,
                "head": head["provenance"],
                "head_layout": layout,
                "attn_implementation": getattr(wrapper.mlm.config, "_attn_implementation", None),
            },
        )
        manifest.write(work)
    return manifest


def wrap(ckpt: Checkpoint, head: Dict[str, Any]) -> FusedSplade:
    """The wrap step: the checkpoint's model with the SPLADE head of ``head`` (``sources.resolve_head``)
    fused in."""
    return FusedSplade(
        ckpt.mlm,
        activation=head["activation"],
        pooling=head["pooling"],
        use_token_type_ids="token_type_ids" in ckpt.inputs,
        zeroed_token_ids=ckpt.zeroed_token_ids,
    ).eval()


def export_onnx(
    wrapper: FusedSplade,
    ckpt: Checkpoint,
    model_path: str,
    opset: int,
    texts: Sequence[str],
) -> None:
    """``torch.onnx.export`` of the wrapper with dynamic batch and sequence axes, traced on ``texts`` (a few
    of mixed lengths, so padding is traced)."""
    dummy = ckpt.feeds(texts, 32)
    args = tuple(torch.from_numpy(dummy[k]) for k in ckpt.inputs)
    dynamic_axes = {k: {0: "batch", 1: "sequence"} for k in ckpt.inputs}
    dynamic_axes[OUTPUT_NAME] = {0: "batch"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about constant shapes; parity is the real check
            torch.onnx.export(
                wrapper,
                args,
                model_path,
                input_names=list(ckpt.inputs),
                output_names=[OUTPUT_NAME],
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as e:  # noqa: BLE001 - torch raises many types here; all mean "this model does not export"
        raise ExportError(
            f"torch.onnx.export failed for this {getattr(ckpt.config, 'model_type', '?')} model at "
            f"opset {opset} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "try another --opset or a newer torch"
        ) from e


def optimize_in_place(model_path: str, config: Any) -> Dict[str, Any]:
    """Replace ``model_path`` by its onnxruntime-optimised graph (``optimize.optimize_graph``)."""
    raw_path = model_path + ".raw"
    os.replace(model_path, raw_path)
    info = optimize_graph(raw_path, model_path, config)
    os.remove(raw_path)
    return info


def build_manifest(
    ckpt: Checkpoint,
    head: Dict[str, Any],
    work: str,
    check: ParityCheck,
    final: Measurement,
    *,
    source: str,
    opset: int,
    quantization: Optional[Dict[str, Any]],
    extra: Dict[str, Any],
) -> Manifest:
    """The artifact's manifest: what the graph computes, its files and their hashes, parity and provenance."""
    model_path = os.path.join(work, MODEL_NAME)
    data_path = os.path.join(work, MODEL_DATA_NAME)
    window = ckpt.window
    return Manifest(
        source=source,
        revision=ckpt.revision,
        architecture=str(ckpt.config.model_type),
        model_class=type(ckpt.mlm).__name__,
        vocab_size=int(check.reference.shape[1]),
        inputs=list(ckpt.inputs),
        activation=head["activation"],
        pooling=head["pooling"],
        max_length={
            "query": int(min(head["query_max_length"], window)),
            "document": int(min(head["document_max_length"], window)),
            "model": int(window),
        },
        special_tokens=ckpt.special_tokens(),
        pad_token_id=ckpt.pad_token_id,
        zeroed_token_ids=[int(i) for i in ckpt.zeroed_token_ids],
        opset=opset,
        versions=versions("torch", "transformers"),
        files={"model": MODEL_NAME, "model_data": MODEL_DATA_NAME, "tokenizer": TOKENIZER_NAME},
        model_sha256=sha256_file(model_path),
        model_bytes=os.path.getsize(model_path),
        model_data_sha256=sha256_file(data_path),
        model_data_bytes=os.path.getsize(data_path),
        parity=check.record(final),
        quantization=quantization,
        extra={"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra},
    )


__all__ = ["DEFAULT_OPSET", "export", "wrap", "export_onnx", "optimize_in_place", "build_manifest"]
