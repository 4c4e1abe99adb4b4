"""Resolve a model reference (a local artifact folder or a hub repo id) to a local folder."""

from __future__ import annotations

import os
from typing import Optional

from splade_onnx.artifact.manifest import MANIFEST_NAME, MODEL_NAME, TOKENIZER_NAME
from splade_onnx.errors import ArtifactError

ARTIFACT_PATTERNS = [MANIFEST_NAME, MODEL_NAME, TOKENIZER_NAME, "*.onnx_data", "*.json"]
# A repo that publishes only an MLM-logits ONNX (e.g. prithivida/Splade_PP_en_v1's onnx/model.onnx) is fused on the fly.
LOGITS_ONNX_PATHS = ["onnx/model.onnx", MODEL_NAME]
HUB_PATTERNS = ARTIFACT_PATTERNS + ["onnx/model.onnx", "onnx/model.onnx_data", "*.txt"]


def fused_cache_dir() -> str:
    """Where logits-only hub repos are fused: ``$SPLADE_ONNX_CACHE/fused`` or ``~/.cache/splade-onnx/fused``."""
    root = os.environ.get("SPLADE_ONNX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "splade-onnx")
    return os.path.join(root, "fused")


def fuse_snapshot(snapshot: str, repo_id: str) -> str:
    """Fuse a downloaded logits-only snapshot into the splade-onnx cache (once; reused while its manifest is there).

    Head and lengths come from the registry entry of ``repo_id`` when it is a known model, else SPLADE's defaults.
    Torch-free: needs only the ``onnx`` package (the ``fuse`` extra)."""
    from splade_onnx.artifact.registry import lookup

    logits = next(
        (os.path.join(snapshot, p) for p in LOGITS_ONNX_PATHS if os.path.isfile(os.path.join(snapshot, p))), None
    )
    if logits is None or not os.path.isfile(os.path.join(snapshot, TOKENIZER_NAME)):
        raise ArtifactError(
            f"no {MANIFEST_NAME}, and no MLM-logits ONNX ({' or '.join(LOGITS_ONNX_PATHS)}) with a {TOKENIZER_NAME} "
            "to fuse: not a splade-onnx artifact",
            snapshot,
        )
    reg = lookup(repo_id) or {}
    act = reg.get("activation", "log1p_relu")
    pool = reg.get("pooling", "max")
    lengths = reg.get("max_length", {"query": 64, "document": 256})
    rev = os.path.basename(os.path.normpath(snapshot))  # the snapshot's commit hash in a hub cache
    out = os.path.join(fused_cache_dir(), repo_id.replace("/", "--"), rev, f"{act}-{pool}")
    if os.path.isfile(os.path.join(out, MANIFEST_NAME)):
        return out
    try:
        from splade_onnx.build.formula import read_model_window
        from splade_onnx.build.fuse import fuse
    except ImportError as e:  # pragma: no cover
        raise ArtifactError(
            "this repo holds only an MLM-logits ONNX; fusing it needs the onnx package: "
            "pip install 'splade-onnx[fuse]'",
            snapshot,
        ) from e
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ArtifactError(
            "this repo holds only an MLM-logits ONNX; fusing it needs the onnx package: "
            "pip install 'splade-onnx[fuse]'",
            snapshot,
        ) from e
    fuse(
        logits,
        out,
        tokenizer=snapshot,
        activation=act,
        pooling=pool,
        zeroed_token_ids="special" if reg.get("zero_special_tokens") else (),
        query_max_length=int(lengths.get("query", 64)),
        document_max_length=int(lengths.get("document", 256)),
        model_max_length=reg.get("max_length", {}).get("model") or read_model_window(snapshot),
        overwrite=True,
        source_name=f"{repo_id}@{rev}",
        architecture=reg.get("architecture"),
    )
    return out


def resolve_model(
    model: "str | os.PathLike[str]",
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    local_files_only: Optional[bool] = None,
) -> str:
    """Return a local folder for ``model``.

    A path that exists is used as is (nothing is written). Anything else of the form ``owner/name`` is fetched with
    huggingface-hub (``snapshot_download``: revision pinning, its cache, ``HF_HUB_OFFLINE=1`` honoured); pass
    ``local_files_only=True`` to guarantee no network access.
    """
    path = os.fspath(model)
    if os.path.isdir(path):
        return path
    if os.path.exists(path):
        raise ArtifactError("expected an artifact folder, got a file", path)
    looks_like_repo = path.count("/") == 1 and not path.startswith((".", "/", "~")) and " " not in path
    if not looks_like_repo:
        raise ArtifactError("no such artifact folder (and not a hub repo id of the form 'owner/name')", path)
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface-hub is a dependency
        raise ArtifactError("huggingface-hub is needed to fetch models from the hub", path) from e
    offline = local_files_only
    if offline is None:
        offline = os.environ.get("SPLADE_ONNX_OFFLINE", "").lower() in ("1", "true", "yes")
    try:
        snapshot = snapshot_download(
            repo_id=path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=bool(offline),
            allow_patterns=HUB_PATTERNS,
        )
    except Exception as e:  # noqa: BLE001 - huggingface-hub raises many types; say what to do
        hint = "it is not in the local cache (offline mode)" if offline else "download failed"
        raise ArtifactError(f"could not fetch hub repo ({hint}: {type(e).__name__}: {e})", path) from e
    if os.path.isfile(os.path.join(snapshot, MANIFEST_NAME)):
        return snapshot
    return fuse_snapshot(snapshot, path)
