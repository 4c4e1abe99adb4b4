"""Query/document roles: a pair of real models in one artifact, and document-only (IDF) queries on real SciFact text."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import doc_text, read_jsonl

from splade_onnx import Expander
from splade_onnx.build.idf import add_idf_role, idf_of
from splade_onnx.build.pair import make_pair
from splade_onnx.errors import ArtifactError


@pytest.fixture(scope="module")
def query_artifact(tiny_checkpoint, tmp_path_factory):
    """A second real model with splade-tiny's tokenizer: random-init BERT (2 x 64), exported with query length 24."""
    from helpers import make_random_checkpoint
    from splade_onnx_export import export
    from transformers import BertConfig

    d = tmp_path_factory.mktemp("qmodel")
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
    )
    ckpt = make_random_checkpoint(str(d / "ckpt"), cfg, tiny_checkpoint, seed=3, head_bias_shift=2.0)
    out = d / "artifact"
    export(ckpt, str(out), query_max_length=24, document_max_length=128, source_name="random-bert-query")
    return str(out)


@pytest.fixture(scope="module")
def pair(tiny_artifact, query_artifact, tmp_path_factory):
    out = tmp_path_factory.mktemp("pair") / "splade-pair"
    make_pair(tiny_artifact, query_artifact, str(out), document_max_length=128, query_max_length=24)
    return str(out)


QUERIES = [
    "0-dimensional biomaterials show inductive properties.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
    "word " * 60,
]


def test_pair_routes_queries_and_documents_to_their_models(pair, tiny_artifact, query_artifact, scifact_texts):
    e = Expander(pair)
    assert e.manifest.extra["roles"]["query"] == {"kind": "model", "path": "query", "source": "random-bert-query"}
    assert e.max_length["document"] == 128 and e.max_length["query"] == 24
    doc_model, query_model = Expander(tiny_artifact), Expander(query_artifact)
    docs = scifact_texts[100:110]
    # documents: splade-tiny at 128 tokens
    assert e.encode_documents(docs) == doc_model.expand(docs, max_length=128)
    # queries: the query model at 24 tokens (the long query is truncated at 24, not at the document length)
    with pytest.warns(UserWarning, match="truncated"):
        q = e.encode_queries(QUERIES)
    with pytest.warns(UserWarning, match="truncated"):
        assert q == query_model.expand(QUERIES, max_length=24)
    assert q != doc_model.expand(QUERIES, max_length=24)  # really another model
    assert e.encode_queries(QUERIES[0]) == q[0]


def test_query_model_argument_and_vocab_check(tiny_artifact, query_artifact, tmp_path):
    e = Expander(tiny_artifact, query_model=query_artifact)
    assert e.encode_queries(QUERIES[:2]) == Expander(query_artifact).expand(QUERIES[:2], max_length=24)
    e2 = Expander(tiny_artifact, query_model=Expander(query_artifact))
    assert e2.encode_queries(QUERIES[:2]) == e.encode_queries(QUERIES[:2])
    # a query model with another vocabulary is refused: the vectors would not share dimensions
    other = tmp_path / "other"
    import shutil

    shutil.copytree(query_artifact, other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = "apple", "banana"
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ArtifactError, match="different vocabularies"):
        Expander(tiny_artifact, query_model=str(other))


@pytest.fixture(scope="module")
def scifact_corpus(datasets_dir):
    return [doc_text(d) for d in read_jsonl(datasets_dir / "scifact" / "corpus.jsonl")]


@pytest.fixture(scope="module")
def idf_artifact(tiny_artifact, scifact_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("idf") / "splade-tiny-doconly"
    add_idf_role(tiny_artifact, scifact_corpus, str(out), corpus_name="scifact")
    return str(out)


def test_idf_query_encoding_matches_opensearch_doc_only_reference(
    idf_artifact, tiny_torch, scifact_corpus, datasets_dir
):
    """Reference: the model cards' recipe with the transformers tokenizer: distinct token ids of the query, special
    tokens removed, each weighted by idf.json; the table itself recomputed from SciFact with the HF tokenizer."""
    _, hf_tok = tiny_torch
    e = Expander(idf_artifact)
    spec = e.manifest.extra["roles"]["query"]
    assert spec["kind"] == "idf" and spec["documents"] == len(scifact_corpus) == 5183
    table = json.loads(open(os.path.join(idf_artifact, "idf.json"), encoding="utf-8").read())
    assert "[CLS]" not in table and "[SEP]" not in table and "[PAD]" not in table
    queries = [q["text"] for q in read_jsonl(datasets_dir / "scifact" / "queries.jsonl", limit=50)]
    vecs = e.encode_queries(queries)
    special = set(hf_tok.all_special_ids)
    checked_df = 0
    corpus_ids = [set(x) for x in hf_tok(scifact_corpus, add_special_tokens=False)["input_ids"]]
    for q, v in zip(queries, vecs):
        ids = sorted(set(hf_tok(q, truncation=True, max_length=512)["input_ids"]) - special)
        toks = hf_tok.convert_ids_to_tokens(ids)
        assert v.indices.tolist() == ids
        np.testing.assert_allclose(v.values, [table[t] for t in toks], rtol=1e-6)
        if checked_df < 3:  # the IDF of a few tokens, recounted from the corpus with the HF tokenizer
            t_id = ids[len(ids) // 2]
            df = sum(1 for d in corpus_ids if t_id in d)
            assert table[hf_tok.convert_ids_to_tokens(t_id)] == pytest.approx(idf_of(df, 5183), rel=1e-5)
            checked_df += 1
    # duplicates count once; no model run: the query vector is the same whatever the documents' model
    v = e.encode_queries("protein protein protein folding")
    assert len(v) == 2
    np.testing.assert_allclose(sorted(v.values.tolist()), sorted([table["protein"], table["folding"]]), rtol=1e-6)
    # documents still run the model
    assert e.encode_documents(["protein folding"])[0].nnz > 10


def test_idf_queries_retrieve_on_scifact(idf_artifact, scifact_corpus, datasets_dir):
    """Document-only retrieval works end to end: the relevant document of a SciFact query ranks in the top 10 for most
    queries (splade-tiny documents, IDF queries, dot product over 200 candidate documents)."""
    import csv

    e = Expander(idf_artifact)
    qrels = {}
    with open(datasets_dir / "scifact" / "qrels" / "test.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], set()).add(row["corpus-id"])
    corpus = read_jsonl(datasets_dir / "scifact" / "corpus.jsonl")
    by_id = {d["_id"]: doc_text(d) for d in corpus}
    queries = {q["_id"]: q["text"] for q in read_jsonl(datasets_dir / "scifact" / "queries.jsonl")}
    qids = [q for q in qrels if q in queries][:25]
    rel_ids = sorted({d for q in qids for d in qrels[q]})
    others = [d["_id"] for d in corpus if d["_id"] not in set(rel_ids)][: 200 - len(rel_ids)]
    cand = rel_ids + others
    dvecs = e.encode_documents([by_id[d] for d in cand], max_length=128)
    qvecs = e.encode_queries([queries[q] for q in qids])
    hits = 0
    for q, qv in zip(qids, qvecs):
        scores = np.array([qv.dot(dv) for dv in dvecs])
        top = {cand[i] for i in np.argsort(-scores)[:10]}
        hits += bool(top & qrels[q])
    print(f"IDF queries: relevant doc in top 10 of 200 for {hits}/{len(qids)} SciFact queries")
    assert hits >= 0.6 * len(qids)


def test_idf_role_errors(tiny_artifact, idf_artifact, tmp_path):
    with pytest.raises(ArtifactError, match="no IDF table"):
        Expander(tiny_artifact, query_model="idf")
    assert Expander(idf_artifact, query_model="idf").encode_queries("cancer").nnz == 1
    with pytest.raises(FileExistsError):
        add_idf_role(tiny_artifact, ["a text"], idf_artifact)


def test_cli_pair_and_idf(tiny_artifact, query_artifact, tmp_path, datasets_dir, capsys):
    from splade_onnx.cli import main

    out = tmp_path / "pair"
    assert main(["pair", tiny_artifact, query_artifact, str(out), "--query-max-length", "24", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["max_length"]["query"] == 24 and info["roles"]["query"]["path"] == "query"
    assert Expander(str(out)).encode_queries(QUERIES[:1]) == Expander(query_artifact).expand(QUERIES[:1], max_length=24)
    idf_out = tmp_path / "doconly"
    corpus = str(datasets_dir / "scifact" / "corpus.jsonl")
    assert main(["idf", corpus, "--model", tiny_artifact, "--out", str(idf_out), "--limit", "500", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 500
    v = Expander(str(idf_out)).encode_queries("breast cancer")
    assert v.nnz == 2
