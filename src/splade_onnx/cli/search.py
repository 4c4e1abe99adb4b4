"""``splade-onnx index``, ``search`` and ``eval``: build an index from a corpus, query it, score it on BEIR data."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict

from splade_onnx.cli.errors import UsageError
from splade_onnx.errors import MissingExtraError
from splade_onnx.io.corpus import read_corpus


def add_parsers(sub: Any) -> None:
    """Register ``index``, ``search`` and ``eval``."""
    add_index(sub)
    add_search(sub)
    add_eval(sub)


def add_index(sub: Any) -> None:
    p = sub.add_parser(
        "index",
        help="encode a corpus and write a searchable index",
        description="Encode CORPUS (JSONL with _id/title/text or contents, or plain text one document a line) "
        "with the artifact and save a SparseIndex folder to OUT.",
    )
    p.add_argument("corpus", nargs="?", help="corpus file (not with --from-vectors)")
    p.add_argument("--model", default=None, help="artifact folder or hub repo id (required with CORPUS)")
    p.add_argument(
        "--from-vectors",
        default=None,
        metavar="DIR",
        help="index the Parquet vector shards of DIR (`splade-onnx encode` output) instead of a corpus",
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="INDEX",
        help="merge saved index folders, in order, into OUT through memory-mapped files (collections larger "
        "than memory; each keeps its ids, stored weights and document order); not with CORPUS",
    )
    p.add_argument("--out", required=True, help="index folder to write (replaced atomically if it is an index)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "uint8"])
    p.add_argument("--doc-max-length", type=int, default=None)
    p.add_argument("--no-texts", action="store_true", help="do not store the document texts in the index")
    p.add_argument(
        "--blocks",
        type=int,
        default=None,
        metavar="SIZE",
        help="build and save block-max pruning structures over blocks of SIZE documents (a power of two; 16 "
        "with --reorder is the measured best for large collections)",
    )
    p.add_argument(
        "--reorder",
        action="store_true",
        help="with --blocks: first renumber the documents so that similar ones share blocks (graph bisection)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_index)


def check_block_options(args: argparse.Namespace) -> None:
    """Refuse bad --blocks/--reorder before any work is done."""
    if args.reorder and args.blocks is None:
        raise UsageError("--reorder needs --blocks SIZE (reordering only pays off with block-max pruning)")
    if args.blocks is not None and (args.blocks < 1 or args.blocks & (args.blocks - 1)):
        raise UsageError(f"--blocks must be a power of two, got {args.blocks}")


def build_pruning(idx: Any, args: argparse.Namespace) -> str:
    """Build the block-max structures (and reorder) when asked; a short description for the summary line."""
    if args.blocks is None:
        return ""
    idx.build_blocks(args.blocks, reorder=args.reorder)
    return f", blocks of {args.blocks}" + (" after reordering" if args.reorder else "")


def _cmd_index(args: argparse.Namespace) -> int:
    from splade_onnx.encode.expander import Expander
    from splade_onnx.index import SparseIndex

    check_block_options(args)
    if args.merge:
        return merge_indexes(args)
    if args.from_vectors:  # Parquet shards of `splade-onnx encode`
        return index_from_vectors(args)
    if not args.corpus or not args.model:
        raise UsageError("index needs CORPUS and --model (or --from-vectors DIR)")
    ids, texts = read_corpus(args.corpus)
    e = Expander(args.model)
    t0 = time.perf_counter()
    idx = SparseIndex.from_expander(
        e,
        texts,
        ids,
        dtype=args.dtype,
        max_length=args.doc_max_length,
        store_texts=not args.no_texts,
        progress=not args.no_progress and not args.json and sys.stderr.isatty(),
    )
    return _save_and_report(idx, args, t0, "encode_index_s", {})


def index_from_vectors(args: Any) -> int:
    """``splade-onnx index --from-vectors DIR --out OUT``: a SparseIndex from Parquet shards, saved to OUT."""
    from splade_onnx.index import SparseIndex

    if args.corpus:
        raise ValueError("pass either CORPUS or --from-vectors DIR, not both")
    t0 = time.perf_counter()
    idx = SparseIndex.from_parquet(args.from_vectors, dtype=args.dtype, store_texts=not args.no_texts)
    return _save_and_report(idx, args, t0, "index_s", {"from_vectors": args.from_vectors})


def merge_indexes(args: argparse.Namespace) -> int:
    """``splade-onnx index --merge A B ... --out OUT [--blocks SIZE]``: saved indexes merged on disk."""
    from splade_onnx.index import SparseIndex

    if args.corpus or args.from_vectors:
        raise UsageError("--merge takes saved index folders; pass no CORPUS or --from-vectors with it")
    if args.reorder:
        raise UsageError(
            "--reorder does not apply to --merge: reorder each index before merging (documents stay in place)"
        )
    t0 = time.perf_counter()
    SparseIndex.merge_saved(args.merge, args.out, block_size=args.blocks)
    seconds = time.perf_counter() - t0
    idx = SparseIndex.load(args.out, mmap=True)
    info = {"index": args.out, "docs": len(idx), "postings": idx.nnz, "dtype": idx.dtype, "merged": args.merge}
    info.update({"blocks": args.blocks, "merge_s": round(seconds, 3)})
    if args.json:
        print(json.dumps(info))
    else:
        blocks = f", blocks of {args.blocks}" if args.blocks else ""
        print(
            f"merged {len(args.merge)} indexes: {len(idx)} documents ({idx.nnz} postings, {idx.dtype}{blocks}) "
            f"in {seconds:.2f}s -> {args.out}"
        )
    return 0


def _save_and_report(idx: Any, args: argparse.Namespace, t0: float, seconds_key: str, extra: Dict[str, Any]) -> int:
    """Build the asked pruning structures, save the index to ``--out`` and print one summary line (or JSON)."""
    pruning = build_pruning(idx, args)
    seconds = time.perf_counter() - t0
    idx.save(args.out)
    info = {"index": args.out, "docs": len(idx), "postings": idx.nnz, "dtype": idx.dtype, **extra}
    info.update({"blocks": args.blocks, "reordered": args.reorder, seconds_key: round(seconds, 3)})
    if args.json:
        print(json.dumps(info))
    else:
        source = f" from {extra['from_vectors']}" if "from_vectors" in extra else ""
        print(
            f"indexed {len(idx)} documents ({idx.nnz} postings, {idx.dtype}{pruning}){source} "
            f"in {seconds:.2f}s -> {args.out}"
        )
    return 0


def add_search(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help="search an index and explain the hits",
        description="Search INDEX for QUERY (or stdin lines) and print the top hits, with their top "
        "contributing tokens under --explain.",
    )
    p.add_argument("index")
    p.add_argument("queries", nargs="*", help="query texts (default: one per line from stdin)")
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--explain", action="store_true", help="print each hit's top contributing tokens")
    p.add_argument("--tokens", type=int, default=5, help="contributing tokens per hit under --explain")
    p.add_argument("--model", default=None, help="artifact (default: the one recorded in the index header)")
    p.add_argument("--query-max-length", type=int, default=None)
    p.add_argument("--verify", action="store_true", help="check every index file's sha256 before searching")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from splade_onnx.encode.expander import Expander
    from splade_onnx.errors import ArtifactError
    from splade_onnx.index import SparseIndex, model_info

    idx = SparseIndex.load(args.index, mmap=True, verify=args.verify)
    model = args.model or idx.model.get("path")
    if not model:
        raise UsageError("the index does not record its model; pass --model ARTIFACT")
    e = Expander(model)
    want = idx.model.get("manifest_sha256")
    got = model_info(e)["manifest_sha256"]
    if want and got and want != got:
        raise ArtifactError(
            f"this artifact is not the one the index was built with (manifest sha256 {got[:12]}... "
            f"vs {want[:12]}... in the index header); pass the right --model",
            model,
        )
    queries = args.queries or [ln.strip() for ln in sys.stdin if ln.strip()]
    if not queries:
        raise UsageError("no query given (pass them as arguments or on stdin)")
    qvecs = e.encode_queries(queries, max_length=args.query_max_length)
    results = idx.search(qvecs, k=args.k)
    vocab = idx.vocab or e.vocab
    for q, qv, hits in zip(queries, qvecs, results):
        rows = []
        for rank, (did, score) in enumerate(hits, 1):
            row: Dict[str, Any] = {"rank": rank, "id": did, "score": round(score, 4)}
            text = idx.text(did)
            if text is not None:
                row["text"] = text
            if args.explain:
                row["tokens"] = [
                    {
                        "token": c.token,
                        "query": round(c.query_weight, 4),
                        "doc": round(c.doc_weight, 4),
                        "product": round(c.product, 4),
                    }
                    for c in idx.explain(qv, did, args.tokens, vocab=vocab)
                ]
            rows.append(row)
        if args.json:
            print(json.dumps({"query": q, "hits": rows}, ensure_ascii=False))
            continue
        print(f"query: {q}")
        if not rows:
            print("  (no document shares a token with this query)")
        for r in rows:
            snippet = (" " + r["text"][:80] + ("..." if len(r["text"]) > 80 else "")) if "text" in r else ""
            print(f"  {r['rank']:>2}. [{r['id']}] {r['score']:.4f}{snippet}")
            if args.explain:
                print(
                    "      top contributing tokens: "
                    + ", ".join(
                        f"{t['token']} ({t['query']:.2f} x {t['doc']:.2f} = {t['product']:.2f})" for t in r["tokens"]
                    )
                )
    return 0


def add_eval(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate retrieval on a BEIR-layout dataset (needs the [eval] extra)",
        description="Encode DATASET_DIR (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv), index, search "
        "exactly and report nDCG@10, MRR@10 (RR@10) and R@100 with ir-measures.",
    )
    p.add_argument("dataset_dir")
    p.add_argument("--model", required=True, help="artifact folder or hub repo id")
    p.add_argument("--split", default="test")
    p.add_argument("--doc-max-length", type=int, default=256)
    p.add_argument("--query-max-length", type=int, default=64)
    p.add_argument("-k", "--top-k", type=int, default=100, help="documents retrieved per query (default 100)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "uint8"])
    p.add_argument("--run-out", default=None, help="write the run in TREC format to this file")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--hybrid",
        choices=["bm25"],
        default=None,
        help="also fuse with BM25 (needs the [hybrid] extra); method and weight chosen on --tune-split",
    )
    p.add_argument("--tune-split", default="train", help="qrels split that chooses the hybrid fusion (default train)")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    try:
        import ir_measures  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as e:
        raise MissingExtraError("eval", "eval (ir-measures, tqdm)", e) from e
    from splade_onnx.evaluate import evaluate

    r = evaluate(
        args.dataset_dir,
        args.model,
        split=args.split,
        doc_max_length=args.doc_max_length,
        query_max_length=args.query_max_length,
        k=args.top_k,
        dtype=args.dtype,
        run_out=args.run_out,
        progress=not args.no_progress and not args.json,
        hybrid=args.hybrid,
        tune_split=args.tune_split,
    )
    if args.json:
        print(json.dumps(r.to_dict()))
        return 0
    m = r.metrics
    print(
        f"{r.dataset} ({r.split}): {r.docs} docs, {r.queries} queries, doc/query max length "
        f"{args.doc_max_length}/{args.query_max_length}, {args.dtype}"
    )
    print(f"  nDCG@10 {m['nDCG@10']:.4f}   MRR@10 {m['RR@10']:.4f}   R@100 {m['R@100']:.4f}")
    print(
        f"  encode docs {r.encode_docs_s:.1f}s, queries {r.encode_queries_s:.1f}s, index {r.index_s:.2f}s, "
        f"search {r.search_s:.3f}s ({1000 * r.search_s / max(1, r.queries):.2f} ms/query)"
    )
    if args.run_out:
        print(f"  run written to {os.path.abspath(args.run_out)}")
    if r.hybrid:
        h, hm = r.hybrid, r.hybrid["metrics"]
        print(
            f"  hybrid + {h['with']}: {h['method']} (sparse weight {h['weight']:.2f}, chosen on {h['tuned_on']}): "
            f"nDCG@10 {hm['nDCG@10']:.4f}   MRR@10 {hm['RR@10']:.4f}   R@100 {hm['R@100']:.4f}   "
            f"({h['with']} alone nDCG@10 {h['other_metrics']['nDCG@10']:.4f})"
        )
    return 0
