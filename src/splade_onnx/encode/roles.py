"""Query and document roles: one artifact for both, a pair of models, or document-only (IDF) queries.

An artifact's manifest may carry ``extra["roles"]``::

    {"document": {"kind": "model", "path": "."},
     "query":    {"kind": "model", "path": "query"}}            # a separate query model in the sub-folder query/
    {"document": {"kind": "model", "path": "."},
     "query":    {"kind": "idf", "file": "idf.json", ...}}      # document-only: no model run for queries

:meth:`Expander.encode_documents` always runs the artifact's own model; :meth:`Expander.encode_queries` uses the
query role when there is one (``Expander(doc, query_model=...)`` sets or overrides it at load time). The Expander
builds the role from :func:`query_spec`; this module knows nothing of the Expander (a query model is anything with
an ``expand`` method).

**Document-only queries** follow OpenSearch's inference-free neural sparse models (``*-doc-v2/v3``): the query is
tokenized with the artifact's tokenizer, the special tokens (``[CLS]``, ``[SEP]``, ...) and the manifest's
``zeroed_token_ids`` are dropped, each *distinct* remaining token gets its weight from the IDF table (a repeated token
counts once, as in the model cards' ``query_vector[input_ids] = 1; query_vector * idf``), and tokens with no IDF
weight are dropped. ``idf.json`` maps token strings to weights, the format OpenSearch ships with those models, so a
published table can be dropped into an artifact as is. :func:`splade_onnx.build.idf.build_idf` computes one from a
corpus with
``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))`` (BM25's / Lucene's IDF, always positive), over the same
tokenization, every vocabulary token included (a token seen in no document gets the largest weight, since SPLADE
documents are expanded to tokens their text does not contain).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Protocol, Union

import numpy as np

from splade_onnx.artifact.manifest import IDF_NAME, QUERY_DIR, Manifest
from splade_onnx.encode import pruning
from splade_onnx.encode.tokenize import TokenizerViews, raise_bad_texts, validate_texts
from splade_onnx.errors import ArtifactError
from splade_onnx.vectors import SparseVector

__all__ = ["QueryRole", "ModelQueryRole", "IdfQueryRole", "query_spec", "IDF_NAME", "QUERY_DIR"]

Encoded = Union[SparseVector, List[SparseVector]]


class QueryEncoder(Protocol):
    """What a query model must offer: the Expander's ``expand``."""

    manifest: Manifest

    def expand(
        self,
        texts: Any,
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
    ) -> Any: ...


class QueryRole(Protocol):
    """How an artifact encodes queries when it does not use its own model for them."""

    kind: str

    @property
    def max_length(self) -> int: ...

    def encode(
        self,
        texts: Any,
        *,
        max_length: Optional[int] = None,
        batch_size: Optional[int] = None,
        prune: pruning.PruneSpec = None,
    ) -> Any: ...


def query_spec(manifest: Manifest) -> Optional[Dict[str, Any]]:
    """The manifest's ``extra["roles"]["query"]`` (``None`` when queries use the artifact's own model)."""
    spec = (manifest.extra or {}).get("roles", {}).get("query")
    if not spec:
        return None
    if spec.get("kind") == "model" and spec.get("path", QUERY_DIR) in (".", ""):
        return None
    return dict(spec)


class ModelQueryRole:
    """Queries through a separate model with the same vocabulary (an Expander of its own)."""

    kind = "model"

    def __init__(self, encoder: QueryEncoder) -> None:
        self.encoder = encoder

    @property
    def max_length(self) -> int:
        return int(self.encoder.manifest.max_length["query"])

    def encode(
        self,
        texts: Any,
        *,
        max_length: Optional[int] = None,
        batch_size: Optional[int] = None,
        prune: pruning.PruneSpec = None,
    ) -> Any:
        return self.encoder.expand(texts, max_length=max_length or self.max_length, batch_size=batch_size, prune=prune)


class IdfQueryRole:
    """Document-only queries: tokenize, keep distinct non-special tokens, weight each by its IDF."""

    kind = "idf"

    def __init__(self, artifact_dir: str, manifest: Manifest, tokens: TokenizerViews, spec: Dict[str, Any]) -> None:
        self.spec = dict(spec)
        self.tokens = tokens
        path = os.path.join(artifact_dir, spec.get("file", IDF_NAME))
        try:
            with open(path, encoding="utf-8") as f:
                table = json.load(f)
        except (OSError, ValueError) as e:
            raise ArtifactError(f"IDF table cannot be read ({e}); rebuild it with `splade-onnx idf`", path) from e
        if not isinstance(table, dict):
            raise ArtifactError("IDF table must be a JSON object {token: weight}", path)
        vocab = tokens.base.get_vocab(with_added_tokens=True)
        self.idf = np.zeros(manifest.vocab_size, dtype=np.float32)
        unknown = []
        for tok, w in table.items():
            i = vocab.get(tok)
            if i is None or i >= len(self.idf):
                unknown.append(tok)
                continue
            self.idf[i] = float(w)
        if unknown:
            raise ArtifactError(
                f"IDF table has {len(unknown)} token(s) not in the tokenizer's vocabulary "
                f"(e.g. {unknown[:5]}): it belongs to another tokenizer",
                path,
            )
        if np.any(self.idf < 0) or not np.all(np.isfinite(self.idf)):
            raise ArtifactError("IDF weights must be finite and non-negative", path)
        self.idf[np.asarray(manifest.zeroed_token_ids, dtype=np.int64)] = 0.0
        self._max_length = int(
            spec.get("max_length") or manifest.max_length.get("model") or manifest.max_length["query"]
        )

    @property
    def max_length(self) -> int:
        return self._max_length

    def encode(
        self,
        texts: Any,
        *,
        max_length: Optional[int] = None,
        batch_size: Optional[int] = None,
        prune: pruning.PruneSpec = None,
    ) -> Any:
        if isinstance(texts, str):
            return self.encode([texts], max_length=max_length, prune=prune)[0]
        items = list(texts)
        bad_type, bad_value, _ = validate_texts(items)
        if bad_type or bad_value:
            raise_bad_texts(items, bad_type, bad_value, [None] * len(items))
        tok = self.tokens.truncating(int(max_length or self._max_length))
        out: List[Optional[SparseVector]] = []
        for e in tok.encode_batch(items):
            ids = np.asarray(e.ids, dtype=np.int64)
            special = np.asarray(e.special_tokens_mask, dtype=bool)
            uniq = np.unique(ids[~special])
            w = self.idf[uniq]
            keep = w > 0
            out.append(SparseVector(uniq[keep].astype(np.int32), w[keep]))
        return pruning.apply(out, prune)
