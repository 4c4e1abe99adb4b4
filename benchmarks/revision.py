"""A module of this repository as it is at a git revision, for the A/B timing scripts (``search_ab.py``,
``reorder_ab.py``)."""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def module_at(rev: str, path: str) -> ModuleType:
    """The module in the repository file ``path`` (e.g. ``src/splade_onnx/index/blocks.py``) at git revision ``rev``,
    loaded under its own name with the suffix ``_base``."""
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    name = Path(path).stem + "_base"
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(src)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
