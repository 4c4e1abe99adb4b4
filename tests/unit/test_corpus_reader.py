"""The one corpus reader (splade_onnx.io.corpus): JSONL and plain text read the same way everywhere."""

from __future__ import annotations

import pytest

from splade_onnx.errors import InputFileError
from splade_onnx.io.corpus import Document, iter_documents, read_corpus, read_qrels, write_trec_run


def test_jsonl_beir_ids_titles_and_texts(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(
        '{"_id": "d1", "title": "Aspirin", "text": "reduces risk"}\n\n{"id": 7, "text": "kidney"}\n'
        '{"text": "no id"}\n{"_id": 0, "contents": "anserini style"}\n',
        encoding="utf-8",
    )
    assert list(iter_documents(p)) == [
        Document("d1", "Aspirin reduces risk"),
        Document(7, "kidney"),
        Document(4, "no id"),
        Document(0, "anserini style"),
    ]


def test_plain_text_uses_line_numbers_as_ids(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("first doc\n\n  second doc  \n", encoding="utf-8")
    assert read_corpus(p) == ([1, 3], ["first doc", "second doc"])


def test_the_format_is_decided_by_content_not_by_extension(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text('{"_id": "a", "text": "json in a .txt"}\n', encoding="utf-8")
    assert read_corpus(p) == (["a"], ["json in a .txt"])
    q = tmp_path / "corpus.jsonl"
    q.write_text("plain text in a .jsonl\n", encoding="utf-8")
    assert read_corpus(q) == ([1], ["plain text in a .jsonl"])


@pytest.mark.parametrize(
    "body, line, why",
    [
        ('{"_id": "a", "text": "ok"}\n{"_id": "b", "text": \n', 2, "not valid JSON"),
        ('{"_id": "a", "text": "ok"}\n["a list"]\n', 2, "JSON object"),
        ('{"_id": "a", "title": "", "text": "  "}\n', 1, "empty document"),
    ],
)
def test_bad_lines_name_path_and_line(tmp_path, body, line, why):
    p = tmp_path / "c.jsonl"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(InputFileError, match=why) as err:
        list(iter_documents(p))
    assert f"{p}:{line}" in str(err.value) and err.value.line == line


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_corpus(tmp_path / "nope.jsonl")


def test_limit_stops_reading(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("a\nb\nc\n", encoding="utf-8")
    assert read_corpus(p, limit=2) == ([1, 2], ["a", "b"])


def test_qrels_and_trec_run_round_trip(tmp_path):
    q = tmp_path / "test.tsv"
    q.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t2\nq2\td3\t1\n", encoding="utf-8")
    assert read_qrels(q) == {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}}
    bad = tmp_path / "bad.tsv"
    bad.write_text("q1\td1\n", encoding="utf-8")
    with pytest.raises(InputFileError, match=":1: expected 3"):
        read_qrels(bad)
    run = tmp_path / "run.trec"
    write_trec_run({"q1": [("d2", 3.5), ("d1", 1.25)]}, run)
    assert run.read_text().splitlines() == ["q1 Q0 d2 1 3.500000 splade-onnx", "q1 Q0 d1 2 1.250000 splade-onnx"]
