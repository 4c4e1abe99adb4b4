"""Known SPLADE models: what each is and how its card deploys it, so ``Expander("owner/name")`` needs no arguments.

Values come from the models' cards and config files. The published weights themselves are not part of the test suite:
each architecture is proven with a random-init model of the real configuration shape (see docs/models.md).
``list_models()`` returns the table.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

# zero_special_tokens: the family sets the weights of the tokenizer's special tokens ([CLS], [SEP], [PAD], [UNK],
# [MASK] ...) to 0 in every vector (OpenSearch's published code: ``values[:, special_token_ids] = 0`` with
# ``special_token_ids = [tokenizer.vocab[t] for t in tokenizer.special_tokens_map.values()]``; the Korean encoder's
# card drops cls/sep/pad/unk). sources: where the weights are published: "mlm" (transformers masked LM),
# "sentence-transformers" (SparseEncoder modules.json), "onnx-logits:<path>" (an ONNX graph with MLM logits output).
_MODELS: List[Dict[str, Any]] = [
    {
        "id": "prithivida/Splade_PP_en_v1",
        "architecture": "bert",
        "vocab_size": 30522,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 64, "document": 256, "model": 512},
        "roles": None,
        "inference_free": False,
        "zero_special_tokens": False,
        "license": "apache-2.0",
        "sources": ["mlm", "onnx-logits:onnx/model.onnx"],
        "notes": "SPLADE++ (BERT-base uncased); one model for queries and documents; the card prints the number "
        "of actual dimensions and the BOW rep (Expander.decode).",
    },
    {
        "id": "prithivida/Splade_PP_en_v2",
        "architecture": "bert",
        "vocab_size": 30522,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 24, "document": 128, "model": 512},
        "roles": {"document": "prithivida/Splade_PP_en_v2", "query": None},
        "inference_free": False,
        "zero_special_tokens": False,
        "license": "apache-2.0",
        "sources": ["mlm", "onnx-logits:onnx/model.onnx"],
        "notes": "document model + a separate query model (the card's pair); token budgets 128 documents / 24 "
        "queries. The query model's repo id is not recorded here: pass it as a second artifact.",
    },
    {
        "id": "naver/splade-v3",
        "architecture": "bert",
        "vocab_size": 30522,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 64, "document": 256, "model": 512},
        "roles": None,
        "inference_free": False,
        "zero_special_tokens": False,
        "license": "cc-by-nc-sa-4.0",
        "sources": ["mlm", "sentence-transformers"],
        "notes": "reference SPLADE (BERT-base); gated on the hub (accept the licence first).",
    },
    {
        "id": "naver/splade-cocondenser-ensembledistil",
        "architecture": "bert",
        "vocab_size": 30522,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 64, "document": 256, "model": 512},
        "roles": None,
        "inference_free": False,
        "zero_special_tokens": False,
        "license": "cc-by-nc-sa-4.0",
        "sources": ["mlm", "sentence-transformers"],
        "notes": "reference SPLADE++ (BERT-base, CoCondenser init, ensemble distillation).",
    },
    {
        "id": "telepix/PIXIE-Splade-Preview",
        "architecture": "modernbert",
        "vocab_size": 50000,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 64, "document": 8192, "model": 8192},
        "roles": None,
        "inference_free": False,
        "zero_special_tokens": False,
        "license": "apache-2.0",
        "sources": ["sentence-transformers"],
        "notes": "Korean/English ModernBERT SparseEncoder (modules.json + SpladePooling max/relu, read at export); "
        "long documents: use windows (roles/windows are the runtime's options).",
    },
    {
        "id": "sewoong/korean-neural-sparse-encoder-v1",
        "architecture": "modernbert",
        "vocab_size": 50000,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 64, "document": 256, "model": 8192},
        "roles": None,
        "inference_free": False,
        "zero_special_tokens": True,
        "license": "apache-2.0",
        "sources": ["mlm"],
        "notes": "A.X-Encoder-base (ModernBERT 22 x 768); OpenSearch neural sparse deployment: documents as "
        "rank_features/sparse_vector with token-id keys; the card drops cls/sep/pad/unk weights.",
    },
    {
        "id": "opensearch-project/opensearch-neural-sparse-encoding-doc-v2-distill",
        "architecture": "distilbert",
        "vocab_size": 30522,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 512, "document": 512, "model": 512},
        "roles": {"document": "self", "query": "idf"},
        "inference_free": True,
        "zero_special_tokens": True,
        "license": "apache-2.0",
        "sources": ["mlm", "sentence-transformers"],
        "notes": "document-only: queries are tokenized and weighted by the repo's idf.json, no model run.",
    },
    {
        "id": "opensearch-project/opensearch-neural-sparse-encoding-doc-v3-distill",
        "architecture": "distilbert",
        "vocab_size": 30522,
        "activation": "log1p_log1p_relu",
        "pooling": "max",
        "max_length": {"query": 512, "document": 512, "model": 512},
        "roles": {"document": "self", "query": "idf"},
        "inference_free": True,
        "zero_special_tokens": True,
        "license": "apache-2.0",
        "sources": ["mlm", "sentence-transformers"],
        "notes": "document-only, log(1 + log(1 + relu)) activation (ST SpladePooling activation_function "
        "'log1p_relu').",
    },
    {
        "id": "opensearch-project/opensearch-neural-sparse-encoding-v2-distill",
        "architecture": "distilbert",
        "vocab_size": 30522,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 512, "document": 512, "model": 512},
        "roles": None,
        "inference_free": False,
        "zero_special_tokens": True,
        "license": "apache-2.0",
        "sources": ["mlm"],
        "notes": "bi-encoder mode: one model for queries and documents.",
    },
    {
        "id": "opensearch-project/opensearch-neural-sparse-encoding-multilingual-v1",
        "architecture": "bert",
        "vocab_size": 105879,
        "activation": "log1p_relu",
        "pooling": "max",
        "max_length": {"query": 512, "document": 512, "model": 512},
        "roles": {"document": "self", "query": "idf"},
        "inference_free": True,
        "zero_special_tokens": True,
        "license": "apache-2.0",
        "sources": ["mlm", "sentence-transformers"],
        "notes": "document-only multilingual (15 languages); its published config is BertForMaskedLM with the "
        "multilingual uncased vocabulary (105879), not XLM-RoBERTa; XLM-R-based SPLADE exports are "
        "covered by a separate parity test (vocab 250002).",
    },
]

_BY_ID = {m["id"].lower(): m for m in _MODELS}


def list_models() -> List[Dict[str, Any]]:
    """The known models, one dict each (a copy: editing it changes nothing)."""
    return copy.deepcopy(_MODELS)


def lookup(model_id: str) -> Optional[Dict[str, Any]]:
    """The registry entry for a hub id (case-insensitive, ``@revision`` ignored), or ``None``."""
    if not isinstance(model_id, str):
        return None
    m = _BY_ID.get(model_id.split("@", 1)[0].strip().lower())
    return copy.deepcopy(m) if m else None
