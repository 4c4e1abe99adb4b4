"""The one reader (and writer) of corpora, queries, qrels and runs.

A corpus or queries file is either

- **JSONL**, recognised by its first non-blank line starting with ``{``: one object per line, the id in ``_id`` (BEIR)
  or ``id``, the text ``title + " " + text`` (BEIR) or ``contents`` (Anserini's ``JsonCollection``); or
- **plain text**: one document per non-blank line, ids are the 1-based line numbers.

Every command and function that reads a corpus goes through :func:`iter_documents`, so ``index``, ``idf``, ``encode``
and ``eval`` read a file the same way. A bad line raises :class:`~splade_onnx.errors.InputFileError` naming
``path:line``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from splade_onnx.errors import InputFileError

log = logging.getLogger("splade_onnx")

DocId = Union[str, int]


class Document(NamedTuple):
    """One corpus entry: its id and the text that is encoded."""

    id: DocId
    text: str


def doc_text(record: Dict[str, Any]) -> str:
    """The text of a JSON record: BEIR's ``title + " " + text``, else Anserini's ``contents``, stripped."""
    text = record.get("text")
    if text is None and "contents" in record:
        text = record.get("contents")
    return (str(record.get("title") or "") + " " + str(text or "")).strip()


def _is_jsonl(path: str) -> bool:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def iter_documents(path: "str | os.PathLike[str]", *, limit: Optional[int] = None) -> Iterator[Document]:
    """Yield the documents of a JSONL or plain-text corpus in file order (see the module docstring), streaming.

    An empty document, a line that is not valid JSON, or a JSON line that is not an object raises
    :class:`InputFileError`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputFileError("file not found", path)
    jsonl = _is_jsonl(path)
    n = 0
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            doc_id: DocId
            if jsonl:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise InputFileError(f"not valid JSON ({e})", path, line_no) from e
                if not isinstance(record, dict):
                    raise InputFileError(f"expected a JSON object, got {type(record).__name__}", path, line_no)
                raw_id = record.get("_id", record.get("id"))
                doc_id = line_no if raw_id is None else raw_id
                text = doc_text(record)
            else:
                doc_id, text = line_no, line.strip()
            if not text:
                raise InputFileError("empty document (no title, text or contents)", path, line_no)
            yield Document(doc_id, text)
            n += 1
            if limit is not None and n >= limit:
                return


def read_corpus(path: "str | os.PathLike[str]", *, limit: Optional[int] = None) -> Tuple[List[DocId], List[str]]:
    """``(ids, texts)`` of a corpus file, read with :func:`iter_documents`."""
    ids: List[DocId] = []
    texts: List[str] = []
    for doc in iter_documents(path, limit=limit):
        ids.append(doc.id)
        texts.append(doc.text)
    return ids, texts


def read_jsonl(path: "str | os.PathLike[str]") -> List[Dict[str, Any]]:
    """Every JSON object of a JSONL file (blank lines skipped)."""
    path = os.fspath(path)
    out: List[Dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputFileError(f"not valid JSON ({e})", path, line_no) from e
    return out


def read_qrels(path: "str | os.PathLike[str]") -> Dict[str, Dict[str, int]]:
    """``qrels/<split>.tsv`` (``query-id corpus-id score``, header optional) -> ``{qid: {docid: rel}}``."""
    path = os.fspath(path)
    qrels: Dict[str, Dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if line_no == 1 and parts[0] == "query-id":
                continue
            if len(parts) != 3:
                raise InputFileError(f"expected 3 tab-separated fields, got {len(parts)}", path, line_no)
            try:
                qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
            except ValueError as e:
                raise InputFileError(f"relevance {parts[2]!r} is not an integer", path, line_no) from e
    return qrels


def write_trec_run(
    run: Dict[str, List[Tuple[str, float]]], path: "str | os.PathLike[str]", tag: str = "splade-onnx"
) -> None:
    """Write ``{qid: [(docid, score), ...]}`` (best first) as a TREC run file (``qid Q0 docid rank score tag``),
    atomically."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for qid, hits in run.items():
            for rank, (did, score) in enumerate(hits, 1):
                f.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
    os.replace(tmp, path)


@dataclass
class BeirData:
    """A BEIR-layout dataset: documents, the judged queries of one split, and their qrels."""

    doc_ids: List[str]
    doc_texts: List[str]
    query_ids: List[str]
    query_texts: List[str]
    qrels: Dict[str, Dict[str, int]]


def load_beir(dataset_dir: str, split: str = "test") -> BeirData:
    """Read ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``; keeps the queries judged in the split."""
    paths = {n: os.path.join(dataset_dir, n) for n in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv")}
    for p in paths.values():
        if not os.path.isfile(p):
            raise InputFileError(
                f"not found: a BEIR dataset folder holds corpus.jsonl, queries.jsonl and qrels/{split}.tsv", p
            )
    doc_ids, doc_texts = read_corpus(paths["corpus.jsonl"])
    qrels = read_qrels(paths[f"qrels/{split}.tsv"])
    queries = [q for q in iter_documents(paths["queries.jsonl"]) if str(q.id) in qrels]
    missing = set(qrels) - {str(q.id) for q in queries}
    if missing:
        log.warning(
            "%d judged query id(s) have no text in queries.jsonl (e.g. %s); they score 0",
            len(missing),
            sorted(missing)[0],
        )
    return BeirData(
        doc_ids=[str(d) for d in doc_ids],
        doc_texts=doc_texts,
        query_ids=[str(q.id) for q in queries],
        query_texts=[q.text for q in queries],
        qrels=qrels,
    )
