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
    return subprocess.run([sys.executable, "-m", "splade_onnx", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env=e)


def test_help_has_examples_and_every_command():
    r = cli("--help")
    assert r.returncode == 0
    assert "examples:" in r.stdout and "splade-onnx expand" in r.stdout
    for cmd in ("export", "expand"):
        assert cmd in r.stdout
    sub = cli("expand", "--help")
    assert sub.returncode == 0 and "--json" in sub.stdout and "--top-k" in sub.stdout


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("splade-onnx ")


@pytest.mark.parametrize("args", [(), ("bogus",), ("expand",), ("expand", "x", "--top-k", "many")],
                         ids=["nothing", "unknown_command", "missing_model", "bad_int"])
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
    if help_.returncode != 0:
        pytest.skip("no eval command in this build")
    assert "--no-progress" in help_.stdout
