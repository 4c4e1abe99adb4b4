"""Public API typed (py.typed, mypy clean on src/), logging through `logging`, no print in the library (issue 6)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "splade_onnx"
# the command line talks to the terminal: cli.py, cli_*.py, *_cli.py and __main__.py may print
def _is_cli(name: str) -> bool:
    return name in ("cli.py", "__main__.py") or name.startswith("cli_") or name.endswith("_cli.py")


def _modules():
    return sorted(p for p in SRC.rglob("*.py"))


def test_py_typed_marker():
    assert (SRC / "py.typed").is_file()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_print_or_stdout_writes_in_the_library(path):
    if _is_cli(path.name):
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("print", "breakpoint"):
                bad.append(f"{f.id}() at line {node.lineno}")
            if (isinstance(f, ast.Attribute) and f.attr == "write" and isinstance(f.value, ast.Attribute)
                    and f.value.attr in ("stdout", "stderr")):
                bad.append(f"sys.{f.value.attr}.write at line {node.lineno}")
    assert not bad, f"{path.name}: use logging.getLogger('splade_onnx') instead of {bad}"


def test_library_loggers_are_namespaced_and_silent_by_default():
    import logging

    import splade_onnx  # noqa: F401
    from splade_onnx import expander

    assert expander.log.name.startswith("splade_onnx")
    root = logging.getLogger()
    assert not any(type(h).__module__.startswith("splade_onnx") for h in root.handlers)


@pytest.mark.slow
def test_mypy_clean(tmp_path):
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy"), str(SRC)],
                       capture_output=True, text=True, timeout=600, cwd=str(SRC.parents[1]))
    assert r.returncode == 0, r.stdout[-4000:]
