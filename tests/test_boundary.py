"""The runtime never imports torch, transformers or optimum, not even indirectly (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = r"""
import json, sys
import splade_onnx
from splade_onnx import Expander, SparseVector
e = Expander(sys.argv[1])
vs = e.expand(["what is splade?", "희소 검색", "🙂"])
e.decode(vs[0], 5); e.to_rank_features(vs[0]); vs[0].to_dict()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum", "splade_onnx_export"))
print(json.dumps({"heavy": heavy, "nnz": [v.nnz for v in vs]}))
"""


def test_runtime_imports_no_torch(tiny_artifact):
    out = subprocess.run([sys.executable, "-c", CODE, tiny_artifact], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["heavy"] == []
    assert all(n > 0 for n in res["nnz"])


def test_import_is_light():
    heavy = "('onnxruntime', 'tokenizers', 'huggingface_hub', 'numpy')"
    code = f"import sys, splade_onnx; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


ALL_MODULES = r"""
import importlib, json, pkgutil, sys
import splade_onnx
failed = {}
for info in pkgutil.walk_packages(splade_onnx.__path__, "splade_onnx."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as e:  # an optional extra that is not installed is fine; torch never is
        failed[info.name] = str(e)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "optimum", "splade_onnx_export"))
print(json.dumps({"heavy": heavy, "failed": failed}))
"""


def test_no_runtime_module_imports_torch():
    """Every module under src/splade_onnx, imported in one fresh interpreter, pulls in no torch or transformers."""
    out = subprocess.run([sys.executable, "-c", ALL_MODULES], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["heavy"] == [], res
    assert not any("torch" in why or "transformers" in why for why in res["failed"].values()), res["failed"]
