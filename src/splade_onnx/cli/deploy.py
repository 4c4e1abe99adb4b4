"""``splade-onnx idf`` and ``splade-onnx pair``: build document-only and query/document artifacts (torch-free)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
from typing import Any

from splade_onnx.io.corpus import iter_documents


def add_parsers(sub: Any) -> None:
    """Register ``idf`` and ``pair``."""
    p = sub.add_parser(
        "idf",
        help="build an IDF table from a corpus: document-only (inference-free) query encoding",
        description="Tokenize CORPUS (JSONL with _id/title/text or contents, or plain text one document a line) "
        "with the "
        "artifact's tokenizer, write idf.json (token -> ln(1 + (N - df + 0.5)/(df + 0.5))) into a copy of the "
        "artifact at --out (or in place), and record the 'idf' query role: encode_queries then weights each distinct "
        "query token by its IDF, with no model run.",
    )
    p.add_argument("corpus")
    p.add_argument("--model", required=True, help="artifact folder")
    p.add_argument("--out", default=None, help="output artifact folder (default: write into --model)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N texts")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_idf)

    p = sub.add_parser(
        "pair",
        help="bundle a document model and a query model into one artifact",
        description="Copy DOC_ARTIFACT to OUT_DIR and QUERY_ARTIFACT to OUT_DIR/query, with roles in the manifest: "
        "encode_documents runs the document model, encode_queries the query model (each with its own length).",
    )
    p.add_argument("document_artifact")
    p.add_argument("query_artifact")
    p.add_argument("out_dir")
    p.add_argument("--doc-max-length", type=int, default=None)
    p.add_argument("--query-max-length", type=int, default=None)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_pair)


def _cmd_idf(args: argparse.Namespace) -> int:
    from splade_onnx.artifact.manifest import IDF_NAME
    from splade_onnx.build.idf import add_idf_role

    out = args.out or args.model
    texts = (d.text for d in itertools.islice(iter_documents(args.corpus), args.limit))
    m = add_idf_role(
        args.model,
        texts,
        out,
        overwrite=args.overwrite,
        corpus_name=os.path.basename(os.path.dirname(os.path.abspath(args.corpus))) or args.corpus,
    )
    q = m.extra["roles"]["query"]
    if args.json:
        print(json.dumps({"out_dir": out, "idf": os.path.join(out, IDF_NAME), "documents": q["documents"]}))
    else:
        print(
            f"wrote {os.path.join(out, IDF_NAME)} from {q['documents']} documents; queries of {out} are now "
            "encoded document-only (IDF-weighted tokens, no model run)"
        )
    return 0


def _cmd_pair(args: argparse.Namespace) -> int:
    from splade_onnx.build.pair import make_pair

    m = make_pair(
        args.document_artifact,
        args.query_artifact,
        args.out_dir,
        document_max_length=args.doc_max_length,
        query_max_length=args.query_max_length,
        overwrite=args.overwrite,
    )
    if args.json:
        print(json.dumps({"out_dir": args.out_dir, "max_length": m.max_length, "roles": m.extra["roles"]}))
    else:
        print(
            f"wrote {args.out_dir}: documents by {m.source} ({m.max_length['document']} tokens), queries by "
            f"{m.extra['roles']['query']['source']} ({m.max_length['query']} tokens)"
        )
    return 0
