"""Resolve a model reference (a local artifact folder or a hub repo id) to a local folder."""
from __future__ import annotations

import os
from typing import Optional

from .errors import ArtifactError
from .manifest import MANIFEST_NAME, MODEL_NAME, TOKENIZER_NAME

ARTIFACT_PATTERNS = [MANIFEST_NAME, MODEL_NAME, TOKENIZER_NAME, "*.onnx_data", "*.json"]


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
        return snapshot_download(
            repo_id=path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=bool(offline),
            allow_patterns=ARTIFACT_PATTERNS,
        )
    except Exception as e:  # noqa: BLE001 - huggingface-hub raises many types; say what to do
        hint = "it is not in the local cache (offline mode)" if offline else "download failed"
        raise ArtifactError(f"could not fetch hub repo ({hint}: {type(e).__name__}: {e})", path) from e
