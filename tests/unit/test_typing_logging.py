"""Typed package (py.typed; mypy runs in scripts/lint.sh), logging through `logging`, no print in the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "splade_onnx"


def _is_cli(path: Path) -> bool:
    """The command line talks to the terminal: the cli/ package and __main__.py may print."""
    return path.name == "__main__.py" or path.parent.name == "cli"


def _modules():
    return sorted(p for p in SRC.rglob("*.py"))


def test_py_typed_marker():
    assert (SRC / "py.typed").is_file()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_no_print_or_stdout_writes_in_the_library(path):
    if _is_cli(path):
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("print", "breakpoint"):
                bad.append(f"{f.id}() at line {node.lineno}")
            if (
                isinstance(f, ast.Attribute)
                and f.attr == "write"
                and isinstance(f.value, ast.Attribute)
                and f.value.attr in ("stdout", "stderr")
            ):
                bad.append(f"sys.{f.value.attr}.write at line {node.lineno}")
    assert not bad, f"{path.name}: use logging.getLogger('splade_onnx') instead of {bad}"


def test_library_loggers_are_namespaced_and_silent_by_default():
    import logging

    import splade_onnx  # noqa: F401
    from splade_onnx.encode import expander

    assert expander.log.name.startswith("splade_onnx")
    root = logging.getLogger()
    assert not any(type(h).__module__.startswith("splade_onnx") for h in root.handlers)
