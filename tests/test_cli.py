"""Everyday CLI use via subprocess: --help with examples, exit codes (1: a fault the user can fix, 2: bad usage),
one-line errors, --json output (issue 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def cli(*args, stdin=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "splade_onnx", *args], input=stdin, capture_output=True, text=True, timeout=120, env=e
    )


def _commands() -> list:
    import argparse

    from splade_onnx.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def test_help_has_examples_and_every_command():
    commands = _commands()
    assert {"export", "expand", "fuse", "idf", "pair", "index", "search", "eval"} <= set(commands)
    r = cli("--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout and "splade-onnx expand" in r.stdout
    listed = {ln.split()[0] for ln in r.stdout.splitlines() if ln.startswith("    ") and ln.split()}
    assert set(commands) <= listed, f"commands missing from --help: {set(commands) - listed}"


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help_with_json(command):
    r = cli(command, "--help")
    assert r.returncode == 0 and "--json" in r.stdout and "Traceback" not in r.stderr


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("splade-onnx ")


@pytest.mark.parametrize(
    "args",
    [(), ("bogus",), ("expand",), ("expand", "x", "--top-k", "many")],
    ids=["nothing", "unknown_command", "missing_model", "bad_int"],
)
def test_bad_usage_exits_2(args):
    r = cli(*args)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr


def test_missing_artifact_exits_1_with_one_line(tmp_path):
    r = cli("expand", str(tmp_path / "no-such-model"), "hello")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no-such-model" in lines[0]
    assert "Traceback" not in r.stderr


def test_corrupt_artifact_exits_1_saying_what_to_do(tiny_artifact, tmp_path):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    (art / "model.onnx").write_bytes(b"not an onnx file")
    r = cli("expand", str(art), "hello")
    assert r.returncode == 1 and "re-export" in r.stderr and "model.onnx" in r.stderr
    assert "Traceback" not in r.stderr


def test_expand_json_lines_from_stdin(tiny_artifact):
    r = cli("expand", tiny_artifact, "--json", "--top-k", "3", stdin="aspirin and heart attack\n\nkidney stones\n")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["aspirin and heart attack", "kidney stones"]
    assert all(len(row["top"]) == 3 and row["nnz"] > 0 for row in rows)


def test_expand_plain_output(tiny_artifact):
    r = cli("expand", tiny_artifact, "aspirin and heart attack", "--top-k", "2")
    assert r.returncode == 0 and "non-zero dimensions" in r.stdout


def test_bad_text_exits_1_naming_the_position(tiny_artifact):
    r = cli("expand", tiny_artifact, stdin="fine text\n\x01\x02\n")
    assert r.returncode == 1 and "position 1" in r.stderr and "Traceback" not in r.stderr


def test_eval_progress_can_be_turned_off():
    help_ = cli("eval", "--help")
    assert help_.returncode == 0 and "--no-progress" in help_.stdout


def _one_error_line(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_export_parity_failure_is_one_line_and_writes_nothing(tiny_checkpoint, tmp_path):
    out = tmp_path / "art"
    r = cli("export", tiny_checkpoint, str(out), "--tolerance", "1e-12")
    assert r.returncode == 1
    assert "tolerance" in _one_error_line(r) or "differs" in r.stderr
    assert not out.exists()


def test_export_of_a_missing_source_is_one_line(tmp_path):
    r = cli("export", str(tmp_path / "no-such-checkpoint"), str(tmp_path / "out"))
    assert r.returncode == 1
    assert "no-such-checkpoint" in _one_error_line(r)


def test_export_without_the_extra_names_it(tmp_path):
    # torch is made unimportable in the child, as on an install without the [export] extra
    code = (
        "import sys; sys.modules['torch'] = None; from splade_onnx.cli import main; "
        f"sys.exit(main(['export', 'splade-tiny', {str(tmp_path / 'o')!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "splade-onnx[export]" in _one_error_line(r)


def test_fuse_failure_is_one_line(tiny_artifact, tmp_path):
    # a fused SPLADE graph has no [batch, seq, vocab] logits output: fuse refuses it
    r = cli("fuse", os.path.join(tiny_artifact, "model.onnx"), str(tmp_path / "fused"), "--tokenizer", tiny_artifact)
    assert r.returncode == 1
    assert "logits" in _one_error_line(r)
    assert not (tmp_path / "fused").exists()


@pytest.mark.parametrize("command", ["idf", "index"])
def test_corpus_commands_name_the_bad_line(command, tiny_artifact, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": \n', encoding="utf-8")
    extra = ["--out", str(tmp_path / "out")]
    r = cli(command, str(corpus), "--model", tiny_artifact, *extra)
    assert r.returncode == 1
    assert f"{corpus}:2" in _one_error_line(r)


def test_pair_of_missing_artifacts_is_one_line(tmp_path):
    r = cli("pair", str(tmp_path / "doc"), str(tmp_path / "query"), str(tmp_path / "out"))
    assert r.returncode == 1
    _one_error_line(r)


def test_search_of_a_missing_index_is_one_line(tmp_path):
    r = cli("search", str(tmp_path / "no-index"), "query")
    assert r.returncode == 1
    assert "no-index" in _one_error_line(r)


def test_eval_of_a_missing_dataset_is_one_line(tiny_artifact, tmp_path):
    r = cli("eval", str(tmp_path / "no-dataset"), "--model", tiny_artifact)
    assert r.returncode == 1
    assert "corpus.jsonl" in _one_error_line(r)
