"""Query and document roles: one artifact for both, a pair of models, or document-only (IDF) queries.

An artifact's manifest may carry ``extra["roles"]``::

    {"document": {"kind": "model", "path": "."},
     "query":    {"kind": "model", "path": "query"}}            # a separate query model in the sub-folder query/
    {"document": {"kind": "model", "path": "."},
     "query":    {"kind": "idf", "file": "idf.json", ...}}      # document-only: no model run for queries

:meth:`Expander.encode_documents` always runs the artifact's own model; :meth:`Expander.encode_queries` uses the
query role when there is one (``Expander(doc, query_model=...)`` sets or overrides it at load time).

**Document-only queries** follow OpenSearch's inference-free neural sparse models (``*-doc-v2/v3``): the query is
tokenized with the artifact's tokenizer, the special tokens (``[CLS]``, ``[SEP]``, ...) and the manifest's
``zeroed_token_ids`` are dropped, each *distinct* remaining token gets its weight from the IDF table (a repeated token
counts once, as in the model cards' ``query_vector[input_ids] = 1; query_vector * idf``), and tokens with no IDF
weight are dropped. ``idf.json`` maps token strings to weights, the format OpenSearch ships with those models, so a
published table can be dropped into an artifact as is. :func:`build_idf` computes one from a corpus with
``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))`` (BM25's / Lucene's IDF, always positive), over the same
tokenization, every vocabulary token included (a token seen in no document gets the largest weight, since SPLADE
documents are expanded to tokens their text does not contain).
"""
from __future__ import annotations

import json
import math
import os
import shutil
from typing import Dict, Iterable, List, Optional

import numpy as np

from splade_onnx.errors import ArtifactError
from splade_onnx.artifact.manifest import Manifest
from splade_onnx.vectors import SparseVector

IDF_NAME = "idf.json"
QUERY_DIR = "query"


class ModelQueryRole:
    """Queries through a separate (or the same-vocabulary) model artifact."""

    kind = "model"

    def __init__(self, expander) -> None:
        self.expander = expander

    @property
    def max_length(self) -> int:
        return int(self.expander.manifest.max_length["query"])

    def encode(self, texts, *, max_length=None, batch_size=None, prune=None):
        return self.expander.expand(texts, max_length=max_length or self.max_length, batch_size=batch_size,
                                    prune=prune)


class IdfQueryRole:
    """Document-only queries: tokenize, keep distinct non-special tokens, weight each by its IDF."""

    kind = "idf"

    def __init__(self, owner, spec: dict) -> None:
        self.owner = owner
        self.spec = dict(spec)
        path = os.path.join(owner.path, spec.get("file", IDF_NAME))
        try:
            with open(path, encoding="utf-8") as f:
                table = json.load(f)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"IDF table cannot be read ({e}); rebuild it with `splade-onnx idf`", path) from e
        if not isinstance(table, dict):
            raise ArtifactError("IDF table must be a JSON object {token: weight}", path)
        vocab = owner._tokenizer.get_vocab(with_added_tokens=True)
        self.idf = np.zeros(owner.manifest.vocab_size, dtype=np.float32)
        unknown = []
        for tok, w in table.items():
            i = vocab.get(tok)
            if i is None or i >= len(self.idf):
                unknown.append(tok)
                continue
            self.idf[i] = float(w)
        if unknown:
            raise ArtifactError(f"IDF table has {len(unknown)} token(s) not in the tokenizer's vocabulary "
                                f"(e.g. {unknown[:5]}): it belongs to another tokenizer", path)
        if np.any(self.idf < 0) or not np.all(np.isfinite(self.idf)):
            raise ArtifactError("IDF weights must be finite and non-negative", path)
        self.idf[np.asarray(owner.manifest.zeroed_token_ids, dtype=np.int64)] = 0.0
        self._max_length = int(spec.get("max_length") or owner.manifest.max_length.get("model")
                               or owner.manifest.max_length["query"])

    @property
    def max_length(self) -> int:
        return self._max_length

    def encode(self, texts, *, max_length=None, batch_size=None, prune=None):
        from splade_onnx.encode import pruning

        if isinstance(texts, str):
            return self.encode([texts], max_length=max_length, prune=prune)[0]
        items = list(texts)
        bad_type, bad_value, _ = self.owner._validate(items)
        if bad_type or bad_value:
            from splade_onnx.errors import TextTypeError, TextValueError

            why = [f"position {i}: not a str ({type(items[i]).__name__})" for i in bad_type]
            why += [f"position {i}: {w}" for i, w in bad_value]
            cls = TextTypeError if bad_type else TextValueError
            raise cls("; ".join(why[:10]), bad_type + [i for i, _ in bad_value], [None] * len(items))
        tok = self.owner._tokenizer_for(int(max_length or self._max_length))
        out: List[SparseVector] = []
        for e in tok.encode_batch(items):
            ids = np.asarray(e.ids, dtype=np.int64)
            special = np.asarray(e.special_tokens_mask, dtype=bool)
            uniq = np.unique(ids[~special])
            w = self.idf[uniq]
            keep = w > 0
            out.append(SparseVector(uniq[keep].astype(np.int32), w[keep]))
        return pruning.apply(out, prune if prune is not None else self.owner.prune)


def load_query_role(expander, query_model=None, **expander_kwargs):
    """The query role of ``expander``: from ``query_model=`` (an Expander, an artifact path, or ``"idf"``), else from
    the manifest's ``extra["roles"]["query"]``, else ``None`` (queries use the artifact's own model)."""
    from splade_onnx.encode.expander import Expander

    spec = (expander.manifest.extra or {}).get("roles", {}).get("query")
    if query_model is not None:
        if isinstance(query_model, Expander):
            role = ModelQueryRole(query_model)
        elif query_model == "idf":
            if not spec or spec.get("kind") != "idf":
                raise ArtifactError("query_model='idf' but this artifact has no IDF table; build one with "
                                    "`splade-onnx idf CORPUS --model ARTIFACT --out OUT`", expander.path)
            return IdfQueryRole(expander, spec)
        else:
            role = ModelQueryRole(Expander(query_model, batch_size=expander.batch_size,
                                           logits_budget_mb=expander.logits_budget_bytes / (1 << 20),
                                           prune=None, **expander_kwargs))
        _check_same_vocab(expander, role.expander)
        return role
    if not spec:
        return None
    kind = spec.get("kind")
    if kind == "idf":
        return IdfQueryRole(expander, spec)
    if kind == "model":
        path = spec.get("path", QUERY_DIR)
        if path in (".", ""):
            return None
        sub = os.path.join(expander.path, path)
        kw = {k: v for k, v in expander_kwargs.items() if k in ("providers", "threads", "verify")}
        role = ModelQueryRole(Expander(sub, batch_size=expander.batch_size,
                                       logits_budget_mb=expander.logits_budget_bytes / (1 << 20), **kw))
        _check_same_vocab(expander, role.expander)
        return role
    raise ArtifactError(f"unknown query role kind {kind!r} (known: model, idf)", expander.path)


def _check_same_vocab(doc, query) -> None:
    if doc.manifest.vocab_size != query.manifest.vocab_size or (
            doc._tokenizer.get_vocab(with_added_tokens=True) != query._tokenizer.get_vocab(with_added_tokens=True)):
        raise ArtifactError(
            f"the query model ({query.path}) and the document model ({doc.path}) have different vocabularies: their "
            "vectors would not share dimensions", query.path)


# ------------------------------------------------------------------------------------------------------ builders
def _copy_artifact(src: str, dest: str, overwrite: bool) -> None:
    if os.path.abspath(src) == os.path.abspath(dest):
        return
    if os.path.exists(dest):
        if not overwrite:
            raise FileExistsError(f"{dest} exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(QUERY_DIR, "*.tmp"))


def make_pair(document_artifact: str, query_artifact: str, out_dir: str, *, document_max_length: Optional[int] = None,
              query_max_length: Optional[int] = None, overwrite: bool = False) -> Manifest:
    """Bundle a document model and a query model (same vocabulary) into one artifact folder: the document artifact at
    the top, the query artifact in ``query/``, ``roles`` recorded in the top manifest. Returns the top manifest."""
    dm, qm = Manifest.read(document_artifact), Manifest.read(query_artifact)
    if dm.vocab_size != qm.vocab_size:
        raise ArtifactError(f"vocabularies differ ({dm.vocab_size} vs {qm.vocab_size})", query_artifact)
    _copy_artifact(document_artifact, out_dir, overwrite)
    qdir = os.path.join(out_dir, QUERY_DIR)
    if os.path.exists(qdir):
        shutil.rmtree(qdir)
    shutil.copytree(query_artifact, qdir, ignore=shutil.ignore_patterns(QUERY_DIR, "*.tmp"))
    if query_max_length:
        qm.max_length["query"] = int(min(query_max_length, qm.max_length.get("model", query_max_length)))
    qm.extra = dict(qm.extra or {}, role="query")
    qm.write(qdir)
    if document_max_length:
        dm.max_length["document"] = int(min(document_max_length, dm.max_length.get("model", document_max_length)))
    dm.max_length["query"] = qm.max_length["query"]
    dm.extra = dict(dm.extra or {})
    dm.extra["roles"] = {"document": {"kind": "model", "path": "."},
                         "query": {"kind": "model", "path": QUERY_DIR, "source": qm.source}}
    dm.write(out_dir)
    _check_loads(out_dir)
    return dm


def _check_loads(path: str) -> None:
    """Fail early if the bundle does not load."""
    from splade_onnx.encode.expander import Expander

    e = Expander(path, verify=True)
    if e._query_role is None:
        raise ArtifactError("bundle has no query role after writing it", path)


def document_frequencies(tokenizer, texts: Iterable[str], vocab_size: int, *, batch: int = 256):
    """``(df, n_docs)``: in how many texts each token id occurs (special tokens excluded), by id."""
    df = np.zeros(vocab_size, dtype=np.int64)
    n = 0
    buf: List[str] = []

    def flush():
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
    tok = Tokenizer.from_file(os.path.join(artifact, m.files.get("tokenizer", "tokenizer.json")))
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


def add_idf_role(artifact: str, texts: Iterable[str], out_dir: Optional[str] = None, *, overwrite: bool = False,
                 corpus_name: Optional[str] = None, max_length: Optional[int] = None) -> Manifest:
    """Write ``idf.json`` (built from ``texts``) into a copy of ``artifact`` at ``out_dir`` (or in place) and record
    the document-only query role in its manifest. Returns the manifest."""
    out_dir = out_dir or artifact
    texts = list(texts)
    table = build_idf(artifact, texts)
    _copy_artifact(artifact, out_dir, overwrite)
    with open(os.path.join(out_dir, IDF_NAME + ".tmp"), "w", encoding="utf-8") as f:
        json.dump(table, f, ensure_ascii=False)
    os.replace(os.path.join(out_dir, IDF_NAME + ".tmp"), os.path.join(out_dir, IDF_NAME))
    m = Manifest.read(out_dir)
    m.extra = dict(m.extra or {})
    m.extra["roles"] = {
        "document": {"kind": "model", "path": "."},
        "query": {"kind": "idf", "file": IDF_NAME, "documents": len([t for t in texts if isinstance(t, str)
                                                                       and t.strip()]),
                  "corpus": corpus_name, "formula": "ln(1 + (N - df + 0.5) / (df + 0.5))",
                  "max_length": int(max_length or m.max_length.get("model") or m.max_length["query"])},
    }
    m.files = dict(m.files, idf=IDF_NAME)
    m.write(out_dir)
    return m


def idf_of(df: int, n_docs: int) -> float:
    """Scalar form of :func:`idf_from_df` (for tests and docs)."""
    return math.log1p((n_docs - df + 0.5) / (df + 0.5))
