"""``splade-onnx idf`` and ``splade-onnx pair``: build document-only and query/document artifacts (torch-free)."""
from __future__ import annotations

import json
import os
import sys
from typing import Iterator


def _read_corpus(path: str, limit=None) -> Iterator[str]:
    """A BEIR ``corpus.jsonl`` (title + text), any JSONL with a ``text``/``contents`` field, or plain text lines."""
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            text = line.rstrip("\n")
            if path.endswith((".jsonl", ".json")):
                d = json.loads(line)
                text = (str(d.get("title", "")) + " " + str(d.get("text", d.get("contents", "")))).strip()
            yield text
            n += 1
            if limit and n >= limit:
                return


def add_commands(sub) -> None:
    p = sub.add_parser(
        "idf", help="build an IDF table from a corpus: document-only (inference-free) query encoding",
        description="Tokenize CORPUS (BEIR corpus.jsonl, JSONL with text/contents, or one text per line) with the "
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
        "pair", help="bundle a document model and a query model into one artifact",
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


def _cmd_idf(args) -> int:
    from splade_onnx.encode.roles import IDF_NAME, add_idf_role

    out = args.out or args.model
    m = add_idf_role(args.model, _read_corpus(args.corpus, args.limit), out, overwrite=args.overwrite,
                     corpus_name=os.path.basename(os.path.dirname(os.path.abspath(args.corpus))) or args.corpus)
    q = m.extra["roles"]["query"]
    if args.json:
        print(json.dumps({"out_dir": out, "idf": os.path.join(out, IDF_NAME), "documents": q["documents"]}))
    else:
        print(f"wrote {os.path.join(out, IDF_NAME)} from {q['documents']} documents; queries of {out} are now "
              "encoded document-only (IDF-weighted tokens, no model run)")
    return 0


def _cmd_pair(args) -> int:
    from splade_onnx.encode.roles import make_pair

    m = make_pair(args.document_artifact, args.query_artifact, args.out_dir,
                  document_max_length=args.doc_max_length, query_max_length=args.query_max_length,
                  overwrite=args.overwrite)
    if args.json:
        print(json.dumps({"out_dir": args.out_dir, "max_length": m.max_length, "roles": m.extra["roles"]}))
    else:
        print(f"wrote {args.out_dir}: documents by {m.source} ({m.max_length['document']} tokens), queries by "
              f"{m.extra['roles']['query']['source']} ({m.max_length['query']} tokens)", file=sys.stdout)
    return 0
