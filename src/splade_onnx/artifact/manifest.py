"""The artifact manifest: what an exported model folder holds and how to run it."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional

from splade_onnx.errors import ArtifactError

MANIFEST_NAME = "splade_onnx.json"
MODEL_NAME = "model.onnx"
# The graph's weights, stored beside it as ONNX external data: onnxruntime maps them instead of parsing a protobuf
# of the whole model, which halves session creation (splade-tiny: ~80 -> ~35 ms of cold start).
MODEL_DATA_NAME = MODEL_NAME + "_data"
TOKENIZER_NAME = "tokenizer.json"
IDF_NAME = "idf.json"  # document-only query role: {token: idf weight}
QUERY_DIR = "query"  # a paired query model's artifact folder inside a document artifact
FORMAT = "splade-onnx"
FORMAT_VERSION = 1
ACTIVATIONS = ("log1p_relu", "log1p_log1p_relu")
POOLINGS = ("max", "sum")
OUTPUT_NAME = "sparse_weights"


@dataclass
class Manifest:
    """Contents of ``splade_onnx.json`` (format version 1)."""

    source: str
    architecture: str
    vocab_size: int
    inputs: List[str]
    activation: str = "log1p_relu"
    pooling: str = "max"
    max_length: Dict[str, int] = field(default_factory=lambda: {"query": 64, "document": 256, "model": 512})
    special_tokens: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    pad_token_id: int = 0
    zeroed_token_ids: List[int] = field(default_factory=list)
    revision: Optional[str] = None
    model_class: Optional[str] = None
    opset: Optional[int] = None
    versions: Dict[str, str] = field(default_factory=dict)
    files: Dict[str, str] = field(default_factory=lambda: {"model": MODEL_NAME, "tokenizer": TOKENIZER_NAME})
    model_sha256: Optional[str] = None
    model_bytes: Optional[int] = None
    model_data_sha256: Optional[str] = None  # of files["model_data"] when the weights are external
    model_data_bytes: Optional[int] = None
    parity: Dict[str, Any] = field(default_factory=dict)
    quantization: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=False) + "\n"

    def write(self, folder: str) -> str:
        path = os.path.join(folder, MANIFEST_NAME)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(self.to_json())
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, folder: str) -> "Manifest":
        path = os.path.join(folder, MANIFEST_NAME)
        if not os.path.isfile(path):
            raise ArtifactError(
                f"no {MANIFEST_NAME} here; this folder is not a splade-onnx artifact. "
                "Create one with `splade-onnx export MODEL OUT_DIR`.",
                path,
            )
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ArtifactError(f"manifest is not valid JSON ({e}); re-export the artifact.", path) from e
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, path: Optional[str] = None) -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ArtifactError(
                "not a splade-onnx manifest (missing 'format': 'splade-onnx'); re-export the artifact with "
                "`splade-onnx export MODEL OUT_DIR`.",
                path,
            )
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"manifest format version {version!r} is not supported by this splade-onnx "
                f"(it reads version {FORMAT_VERSION}); upgrade splade-onnx or re-export the model.",
                path,
            )
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            m = cls(**kwargs)
        except TypeError as e:
            raise ArtifactError(f"manifest is missing required fields ({e}); re-export the artifact.", path) from e
        m.validate(path)
        return m

    def validate(self, path: Optional[str] = None) -> None:
        if self.activation not in ACTIVATIONS:
            raise ArtifactError(
                f"unknown activation {self.activation!r} (known: {', '.join(ACTIVATIONS)}); "
                "upgrade splade-onnx or re-export the artifact.",
                path,
            )
        if self.pooling not in POOLINGS:
            raise ArtifactError(
                f"unknown pooling {self.pooling!r} (known: {', '.join(POOLINGS)}); "
                "upgrade splade-onnx or re-export the artifact.",
                path,
            )
        if not isinstance(self.vocab_size, int) or self.vocab_size <= 0:
            raise ArtifactError(f"invalid vocab_size {self.vocab_size!r}; re-export the artifact.", path)
        if "input_ids" not in self.inputs or "attention_mask" not in self.inputs:
            raise ArtifactError(
                "manifest inputs must include input_ids and attention_mask; re-export the artifact.", path
            )


def check_out_dir(out_dir: str, overwrite: bool) -> None:
    """Refuse to replace a non-empty ``out_dir`` unless ``overwrite``."""
    if os.path.exists(out_dir) and os.listdir(out_dir) and not overwrite:
        what = (
            "already holds an artifact"
            if os.path.isfile(os.path.join(out_dir, MANIFEST_NAME))
            else "exists and is not empty"
        )
        raise FileExistsError(f"{out_dir} {what}; pass overwrite=True (--overwrite)")


@contextlib.contextmanager
def staged_dir(out_dir: str, prefix: str = ".splade-onnx-") -> Iterator[str]:
    """Build a folder beside ``out_dir`` and move it into place only when the block succeeds.

    A failure (or an interrupt) removes the staging folder, so a half-written artifact never appears at ``out_dir``.
    The folder gets the usual permissions (``mkdtemp`` would leave it readable by its owner only).
    """
    import shutil
    import tempfile

    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=prefix, dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(work, 0o777 & ~umask)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(work, out_dir)


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    import hashlib  # here, not at import: loading OpenSSL costs cold start; the Expander hashes in a thread

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()
