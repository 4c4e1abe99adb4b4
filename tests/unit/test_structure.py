"""The package's shape, checked from its source: no import cycles between modules, and no module reads another
module's private names (``obj._x`` or ``from m import _x`` where ``_x`` is defined elsewhere)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "splade_onnx"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(name: str, path: Path) -> set:
    """Modules of this package that ``name`` imports anywhere (top level or inside functions)."""
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in MODULES else base)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in MODULES and m != name and not m == "splade_onnx"}


def _graph() -> dict:
    # a package's __init__ only re-exports its modules: an edge to a package means an edge to its __init__
    return {name: _imports(name, path) for name, path in MODULES.items()}


def _find_cycle(graph: dict):
    state: dict = {}
    stack: list = []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles_between_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _private_names_defined(tree: ast.AST) -> set:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_uses(source: str) -> list:
    """``(line, name)`` for each private name this source uses but does not define itself."""
    tree = ast.parse(source)
    own = _private_names_defined(tree)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if node.attr not in own:
                bad.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("splade_onnx"):
            bad += [(node.lineno, a.name) for a in node.names if a.name.startswith("_") and a.name != "__version__"]
    return bad


# Private attributes of third-party objects that have no public equivalent.
ALLOWED = {"_SubParsersAction"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_reads_another_modules_private_names(name):
    bad = [(ln, n) for ln, n in private_uses(MODULES[name].read_text(encoding="utf-8")) if n not in ALLOWED]
    assert not bad, f"{MODULES[name]} uses private names of other modules: {bad}"


def test_the_private_check_flags_foreign_private_access():
    assert private_uses("def f(e):\n    return e._session\n") == [(2, "_session")]
    assert private_uses("from splade_onnx.encode import _x\n") == [(1, "_x")]
    assert (
        private_uses(
            "class A:\n    def __init__(self):\n        self._x = 1\n    def f(self):\n        return self._x\n"
        )
        == []
    )
