"""``idf``: an IDF table for document-only (inference-free) query encoding, in OpenSearch's ``idf.json`` format.

``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))`` (BM25's / Lucene's IDF, always positive), over the artifact's
own tokenization, every vocabulary token included (a token seen in no document gets the largest weight, since SPLADE
documents are expanded to tokens their text does not contain). See :mod:`splade_onnx.encode.roles` for how queries
use it.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import numpy as np

from splade_onnx.artifact.manifest import IDF_NAME, TOKENIZER_NAME, Manifest
from splade_onnx.build.pair import copy_artifact


def document_frequencies(
    tokenizer: Any, texts: Iterable[str], vocab_size: int, *, batch: int = 256
) -> Tuple[np.ndarray, int]:
    """``(df, n_docs)``: in how many texts each token id occurs (special tokens excluded), by id."""
    df = np.zeros(vocab_size, dtype=np.int64)
    n = 0
    buf: List[str] = []

    def flush() -> None:
        nonlocal n
        for e in tokenizer.encode_batch(buf):
            ids = np.asarray(e.ids, dtype=np.int64)[~np.asarray(e.special_tokens_mask, dtype=bool)]
            df[np.unique(ids)] += 1
        n += len(buf)
        buf.clear()

    for t in texts:
        if isinstance(t, str) and t.strip():
            buf.append(t)
            if len(buf) >= batch:
                flush()
    if buf:
        flush()
    return df, n


def idf_from_df(df: np.ndarray, n_docs: int) -> np.ndarray:
    """BM25 / Lucene IDF ``ln(1 + (N - df + 0.5) / (df + 0.5))``."""
    df = df.astype(np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5))


def build_idf(artifact: str, texts: Iterable[str]) -> Dict[str, float]:
    """``{token: idf}`` over every non-special vocabulary token, from ``texts`` tokenized with the artifact's
    tokenizer (whole texts, no truncation)."""
    from tokenizers import Tokenizer

    m = Manifest.read(artifact)
    tok = Tokenizer.from_file(os.path.join(artifact, m.files.get("tokenizer", TOKENIZER_NAME)))
    tok.no_truncation()
    tok.no_padding()
    df, n = document_frequencies(tok, texts, m.vocab_size)
    if n == 0:
        raise ValueError("the corpus holds no non-empty text")
    idf = idf_from_df(df, n)
    special = {int(s["id"]) for s in m.special_tokens.values() if isinstance(s, dict) and "id" in s}
    special |= {int(i) for i in m.zeroed_token_ids}
    table: Dict[str, float] = {}
    for t, i in tok.get_vocab(with_added_tokens=True).items():
        if i < m.vocab_size and i not in special:
            table[t] = round(float(idf[i]), 6)
    return dict(sorted(table.items(), key=lambda kv: tok.token_to_id(kv[0]) or 0))


def add_idf_role(
    artifact: str,
    texts: Iterable[str],
    out_dir: Optional[str] = None,
    *,
    overwrite: bool = False,
    corpus_name: Optional[str] = None,
    max_length: Optional[int] = None,
) -> Manifest:
    """Write ``idf.json`` (built from ``texts``) into a copy of ``artifact`` at ``out_dir`` (or in place) and record
    the document-only query role in its manifest. Returns the manifest."""
    out_dir = out_dir or artifact
    texts = list(texts)
    table = build_idf(artifact, texts)
    copy_artifact(artifact, out_dir, overwrite)
    with open(os.path.join(out_dir, IDF_NAME + ".tmp"), "w", encoding="utf-8") as f:
        json.dump(table, f, ensure_ascii=False)
    os.replace(os.path.join(out_dir, IDF_NAME + ".tmp"), os.path.join(out_dir, IDF_NAME))
    m = Manifest.read(out_dir)
    m.extra = dict(m.extra or {})
    m.extra["roles"] = {
        "document": {"kind": "model", "path": "."},
        "query": {
            "kind": "idf",
            "file": IDF_NAME,
            "documents": len([t for t in texts if isinstance(t, str) and t.strip()]),
            "corpus": corpus_name,
            "formula": "ln(1 + (N - df + 0.5) / (df + 0.5))",
            "max_length": int(max_length or m.max_length.get("model") or m.max_length["query"]),
        },
    }
    m.files = dict(m.files, idf=IDF_NAME)
    m.write(out_dir)
    return m


def idf_of(df: int, n_docs: int) -> float:
    """Scalar form of :func:`idf_from_df` (for tests and docs)."""
    return math.log1p((n_docs - df + 0.5) / (df + 0.5))
