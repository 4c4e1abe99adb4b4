"""``pair``: bundle a document model and a query model (same vocabulary) into one artifact folder."""

from __future__ import annotations

import os
import shutil
from typing import Optional

from splade_onnx.artifact.manifest import QUERY_DIR, Manifest
from splade_onnx.errors import ArtifactError


def copy_artifact(src: str, dest: str, overwrite: bool) -> None:
    """Copy an artifact folder (without a bundled query model or temporary files) to ``dest``."""
    if os.path.abspath(src) == os.path.abspath(dest):
        return
    if os.path.exists(dest):
        if not overwrite:
            raise FileExistsError(f"{dest} exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(QUERY_DIR, "*.tmp"))


def make_pair(
    document_artifact: str,
    query_artifact: str,
    out_dir: str,
    *,
    document_max_length: Optional[int] = None,
    query_max_length: Optional[int] = None,
    overwrite: bool = False,
) -> Manifest:
    """Bundle a document model and a query model (same vocabulary) into one artifact folder: the document artifact at
    the top, the query artifact in ``query/``, ``roles`` recorded in the top manifest. Returns the top manifest."""
    dm, qm = Manifest.read(document_artifact), Manifest.read(query_artifact)
    if dm.vocab_size != qm.vocab_size:
        raise ArtifactError(f"vocabularies differ ({dm.vocab_size} vs {qm.vocab_size})", query_artifact)
    copy_artifact(document_artifact, out_dir, overwrite)
    qdir = os.path.join(out_dir, QUERY_DIR)
    if os.path.exists(qdir):
        shutil.rmtree(qdir)
    shutil.copytree(query_artifact, qdir, ignore=shutil.ignore_patterns(QUERY_DIR, "*.tmp"))
    if query_max_length:
        qm.max_length["query"] = int(min(query_max_length, qm.max_length.get("model", query_max_length)))
    qm.extra = dict(qm.extra or {}, role="query")
    qm.write(qdir)
    if document_max_length:
        dm.max_length["document"] = int(min(document_max_length, dm.max_length.get("model", document_max_length)))
    dm.max_length["query"] = qm.max_length["query"]
    dm.extra = dict(dm.extra or {})
    dm.extra["roles"] = {
        "document": {"kind": "model", "path": "."},
        "query": {"kind": "model", "path": QUERY_DIR, "source": qm.source},
    }
    dm.write(out_dir)
    _check_loads(out_dir)
    return dm


def _check_loads(path: str) -> None:
    """Fail early if the bundle does not load."""
    from splade_onnx.encode.expander import Expander

    e = Expander(path, verify=True)
    if e.query_role is None:
        raise ArtifactError("bundle has no query role after writing it", path)
