"""Read what a source says about its own SPLADE head: a sentence-transformers SparseEncoder repo's modules,
and the registry of known models.

sentence-transformers (sparse_encoder/modules/splade_pooling.py, v5-v6) saves ``modules.json`` listing an
``MLMTransformer`` (or a ``Transformer`` with ``transformer_task: fill-mask``) whose weights live in the
module's ``path`` (``""``: the repo root), followed by a ``SpladePooling`` module whose ``config.json`` holds
``pooling_strategy`` (max|sum), ``activation_function`` and ``embedding_dimension`` (formerly
``word_embedding_dimension``). Its activations are named by what comes *before* SPLADE's log1p: ``relu`` ->
log1p(relu(x)) (SPLADE), ``log1p_relu`` -> log1p(log1p(relu(x))) (OpenSearch v3).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence

from splade_onnx.build.formula import SPECIAL_TOKEN_NAMES, special_tokens
from splade_onnx.build.formula import special_token_ids as formula_special_token_ids

from .options import ExportOptionError

ST_ACTIVATIONS = {"relu": "log1p_relu", "log1p_relu": "log1p_log1p_relu"}


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _fetch(source: str, name: str, revision: Optional[str]) -> Optional[str]:
    if os.path.isdir(source):
        p = os.path.join(source, name)
        return p if os.path.isfile(p) else None
    try:  # a hub id: the file may not exist (not an ST repo), or the hub may be unreachable
        from huggingface_hub import hf_hub_download

        return hf_hub_download(source, name, revision=revision)
    except Exception:  # noqa: BLE001
        return None


def read_sparse_encoder(source: str, revision: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """``None`` when ``source`` is not a sentence-transformers SparseEncoder repo, else what it prescribes:
    ``{"model_path", "pooling", "activation", "st_activation", "max_seq_length", "embedding_dimension",
    "modules"}``.
    """
    mj = _fetch(source, "modules.json", revision)
    if mj is None:
        return None
    modules = _read_json(mj)
    mlm = pool = None
    for m in modules:
        typ = str(m.get("type", ""))
        short = typ.rsplit(".", 1)[-1]
        if short in ("SparseStaticEmbedding", "Router", "Asym") and mlm is None:
            raise ExportOptionError(
                f"{source}: sentence-transformers module {short} (an inference-free / routed SparseEncoder) "
                "is not a "
                "single MLM + SpladePooling pipeline; export its document model folder instead"
            )
        if short == "MLMTransformer" or (short == "Transformer" and mlm is None):
            mlm = m
        elif short == "SpladePooling":
            pool = m
    if mlm is None or pool is None:
        return None
    out: Dict[str, Any] = {"modules": [str(m.get("type")) for m in modules]}
    sub = str(mlm.get("path", "") or "")
    out["model_path"] = os.path.join(source, sub) if (os.path.isdir(source) and sub) else source
    out["model_subfolder"] = sub
    sb = _fetch(source, "/".join(p for p in (sub, "sentence_bert_config.json") if p), revision)
    if sb is not None:
        sbc = _read_json(sb)
        if short_task := sbc.get("transformer_task"):
            if short_task != "fill-mask":
                return None
        if sbc.get("max_seq_length"):
            out["max_seq_length"] = int(sbc["max_seq_length"])
    cfg_path = _fetch(source, "/".join(p for p in (str(pool.get("path", "")), "config.json") if p), revision)
    cfg = _read_json(cfg_path) if cfg_path else {}
    pooling = cfg.get("pooling_strategy", "max")
    st_act = cfg.get("activation_function", "relu")
    if pooling not in ("max", "sum"):
        raise ExportOptionError(f"{source}: unsupported SpladePooling pooling_strategy {pooling!r}")
    if st_act not in ST_ACTIVATIONS:
        raise ExportOptionError(f"{source}: unsupported SpladePooling activation_function {st_act!r}")
    out.update(
        pooling=pooling,
        activation=ST_ACTIVATIONS[st_act],
        st_activation=st_act,
        embedding_dimension=cfg.get("embedding_dimension", cfg.get("word_embedding_dimension")),
    )
    return out


_DEFAULTS = {"activation": "log1p_relu", "pooling": "max", "query_max_length": 64, "document_max_length": 256}


def special_token_ids(tokenizer: Any) -> List[int]:
    """OpenSearch's rule (``formula.special_token_ids``): the ids of every token in the tokenizer's special
    tokens map (cls, sep, pad, unk, mask, bos, eos; additional special tokens included), sorted."""
    named = {n: getattr(tokenizer, f"{n}_token", None) for n in SPECIAL_TOKEN_NAMES}
    names = {n: str(t) for n, t in named.items() if t is not None}
    extra = getattr(tokenizer, "additional_special_tokens", None) or []
    additional = [tokenizer.convert_tokens_to_ids(str(t)) for t in extra]
    return formula_special_token_ids(special_tokens(names, tokenizer.convert_tokens_to_ids), additional)


def resolve_head(
    source: str,
    *,
    revision: Optional[str] = None,
    source_name: Optional[str] = None,
    activation: Optional[str] = None,
    pooling: Optional[str] = None,
    query_max_length: Optional[int] = None,
    document_max_length: Optional[int] = None,
    zeroed_token_ids: "Sequence[int] | str | None" = None,
) -> Dict[str, Any]:
    """Decide the SPLADE head: explicit argument > sentence-transformers config > registry entry > default.

    Returns the values, the folder/id holding the MLM weights, ``zeroed_ids(tokenizer) -> list`` and a
    provenance record (where each value came from) for the manifest."""
    from splade_onnx.artifact.registry import lookup

    st = read_sparse_encoder(source, revision)
    reg = lookup(source_name or "") or lookup(source)
    prov: Dict[str, Any] = {}
    vals: Dict[str, Any] = {}
    explicit = {
        "activation": activation,
        "pooling": pooling,
        "query_max_length": query_max_length,
        "document_max_length": document_max_length,
    }
    for key, val in explicit.items():
        if val is not None:
            vals[key], prov[key] = val, "argument"
        elif st is not None and key in ("activation", "pooling"):
            vals[key], prov[key] = st[key], "sentence-transformers SpladePooling config"
        elif reg is not None:
            role = "query" if key.startswith("query") else "document"
            rv = reg[key] if key in reg else reg["max_length"][role]
            vals[key], prov[key] = rv, f"registry:{reg['id']}"
        else:
            vals[key], prov[key] = _DEFAULTS[key], "default"
    if st is not None and st.get("max_seq_length") and document_max_length is None and reg is None:
        vals["document_max_length"] = int(st["max_seq_length"])
        prov["document_max_length"] = "sentence-transformers max_seq_length"
    if vals["activation"] not in ("log1p_relu", "log1p_log1p_relu"):
        raise ExportOptionError(f"unknown activation {vals['activation']!r} (log1p_relu | log1p_log1p_relu)")
    if vals["pooling"] not in ("max", "sum"):
        raise ExportOptionError(f"unknown pooling {vals['pooling']!r} (max | sum)")

    zero = zeroed_token_ids
    if zero is None:
        zero = "special" if (reg is not None and reg.get("zero_special_tokens")) else ()
        prov["zeroed_token_ids"] = f"registry:{reg['id']}" if reg is not None else "default"
    else:
        prov["zeroed_token_ids"] = "argument"
    if isinstance(zero, str):
        if zero != "special":
            raise ExportOptionError(f"zeroed_token_ids must be a list of ids or 'special', got {zero!r}")
        prov["zeroed_rule"] = "special tokens of the tokenizer (OpenSearch)"

        def zeroed_ids(tokenizer) -> List[int]:
            return special_token_ids(tokenizer)
    else:
        fixed = [int(i) for i in zero]

        def zeroed_ids(tokenizer) -> List[int]:
            return fixed

    if st is not None:
        keys = ("st_activation", "pooling", "modules", "embedding_dimension", "model_subfolder")
        prov["sentence_transformers"] = {k: st[k] for k in keys}
    return dict(
        vals,
        model_path=st["model_path"] if st else source,
        zeroed_ids=zeroed_ids,
        provenance=prov,
        registry=reg,
        sentence_transformers=st,
    )
