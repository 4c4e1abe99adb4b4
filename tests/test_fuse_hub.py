"""Torch-free fusion of an MLM-logits ONNX, the hub path (offline HF cache layout, read-only cache, on-the-fly fuse
of a logits-only repo) and the known-model registry."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from splade_onnx_export import splade_reference
from test_parity import assert_parity

from splade_onnx import Expander
from splade_onnx.artifact.manifest import Manifest
from splade_onnx.build.formula import PARITY_TEXTS


@pytest.fixture(scope="module")
def logits_onnx(tiny_checkpoint, tmp_path_factory):
    """splade-tiny exported as a plain MLM-logits ONNX (what several SPLADE repos publish as onnx/model.onnx)."""
    import torch
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(tiny_checkpoint).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    out = tmp_path_factory.mktemp("logits") / "model.onnx"
    ids = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(
        Logits(model),
        (ids, ids, torch.zeros_like(ids)),
        str(out),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={k: {0: "b", 1: "s"} for k in names + ["logits"]},
        opset_version=17,
        dynamo=False,
    )
    return str(out)


def _run_clean(code: str) -> str:
    """Run code in a fresh interpreter; fail if torch or transformers got imported."""
    code += "\nimport sys\nbad=[m for m in ('torch','transformers','optimum') if m in sys.modules]"
    code += "\nassert not bad, bad\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.parametrize("activation,pooling", [("log1p_relu", "max"), ("log1p_log1p_relu", "sum")])
def test_fuse_cli_torch_free_parity(
    logits_onnx, tiny_checkpoint, tiny_torch, tiny_artifact, scifact_texts, tmp_path, activation, pooling
):
    out = str(tmp_path / "fused")
    _run_clean(
        "from splade_onnx.cli import main\n"
        f"rc = main(['fuse', {logits_onnx!r}, {out!r}, '--tokenizer', {tiny_checkpoint!r}, '--activation', "
        f"{activation!r}, '--pooling', {pooling!r}, '--zero-special-tokens'])\nassert rc == 0, rc\n"
    )
    m = Manifest.read(out)
    assert (m.activation, m.pooling) == (activation, pooling) and m.vocab_size == 30522
    assert m.zeroed_token_ids == [0, 100, 101, 102, 103] and m.max_length["model"] == 512
    assert m.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert m.parity["max_abs_error"] <= 1e-4 and m.parity["reference"].startswith("the source logits ONNX")
    # fuse and export share one formula module: the same parity texts and length, window and special tokens
    exported = Manifest.read(tiny_artifact)
    assert m.parity["texts"] == exported.parity["texts"] == len(PARITY_TEXTS)
    assert m.parity["max_length"] == exported.parity["max_length"] == 256
    assert m.special_tokens == exported.special_tokens and m.max_length == exported.max_length
    # and against the torch reference, through the runtime
    model, tok = tiny_torch
    texts = scifact_texts[::24]
    ref = splade_reference(
        model,
        tok,
        texts,
        max_length=256,
        activation=activation,
        pooling=pooling,
        zeroed_token_ids=m.zeroed_token_ids,
        batch_size=4,
    )
    with pytest.warns(UserWarning):
        vecs = Expander(out).expand(texts, max_length=256)
    if pooling == "max":
        assert_parity(vecs, ref)
    else:  # sum over up to 256 tokens: bound the error relative to the weights' scale
        for v, r in zip(vecs, ref, strict=True):
            assert np.max(np.abs(v.to_dense(30522) - r)) <= 1e-4 * max(1.0, float(r.max()))


def test_fuse_refuses_a_graph_without_logits(tiny_artifact, tiny_checkpoint, tmp_path):
    from splade_onnx.build.fuse import FuseError, fuse

    with pytest.raises(FuseError, match="logits"):
        fuse(os.path.join(tiny_artifact, "model.onnx"), str(tmp_path / "x"), tokenizer=tiny_checkpoint)
    assert not os.path.exists(tmp_path / "x")


def _hf_cache(root, repo_id: str, files: dict, rev: str = "0123456789abcdef0123456789abcdef01234567") -> str:
    """A real huggingface-hub cache layout: models--o--n/{blobs,refs/main,snapshots/<rev>/...}."""
    repo = os.path.join(root, "models--" + repo_id.replace("/", "--"))
    snap = os.path.join(repo, "snapshots", rev)
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(rev)
    for rel, src in files.items():
        dest = os.path.join(snap, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(src, dest)
    return snap


def _tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_mtime_ns, st.st_size, st.st_mode)
    return out


def test_hub_offline_cache_and_read_only(tiny_artifact, tmp_path, monkeypatch):
    cache = str(tmp_path / "hub")
    files = {n: os.path.join(tiny_artifact, n) for n in os.listdir(tiny_artifact)}
    snap = _hf_cache(cache, "someone/splade-tiny-onnx", files)
    e = Expander("someone/splade-tiny-onnx", local_files_only=True, cache_dir=cache)
    assert os.path.realpath(e.path) == os.path.realpath(snap)
    v = e.expand("what is splade?")
    assert v.nnz > 0
    pinned = Expander(
        "someone/splade-tiny-onnx",
        revision="0123456789abcdef0123456789abcdef01234567",
        local_files_only=True,
        cache_dir=cache,
    )
    assert np.array_equal(pinned.expand("what is splade?").indices, v.indices)
    from splade_onnx.errors import ArtifactError

    with pytest.raises(ArtifactError, match="offline"):
        Expander("someone/splade-tiny-onnx", revision="f" * 40, local_files_only=True, cache_dir=cache)
    # the hub's own offline switch
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert Expander("someone/splade-tiny-onnx", cache_dir=cache).expand("what is splade?").nnz == v.nnz
    # a read-only cache: chmod, and (as root, where chmod does not stop writes) nothing may change in the tree
    before = _tree(cache)
    for d, dirs, fs in os.walk(cache):
        for n in dirs + fs:
            os.chmod(os.path.join(d, n), 0o555 if n in dirs else 0o444)
    os.chmod(cache, 0o555)
    try:
        before = _tree(cache)
        e2 = Expander("someone/splade-tiny-onnx", cache_dir=cache, local_files_only=True)
        assert np.array_equal(e2.expand("what is splade?").indices, v.indices)
        assert _tree(cache) == before, "the hub cache was written to"
    finally:
        for d, _dirs, _files in os.walk(cache):
            os.chmod(d, 0o755)


def test_logits_only_repo_fused_on_the_fly_with_registry_defaults(logits_onnx, tiny_checkpoint, tmp_path, monkeypatch):
    """prithivida/Splade_PP_en_v2 publishes onnx/model.onnx (MLM logits): fused once, torch-free, into
    SPLADE_ONNX_CACHE with the registry's head and 24/128 token budgets, then reused."""
    cache = str(tmp_path / "hub")
    fused_root = str(tmp_path / "splade-cache")
    _hf_cache(
        cache,
        "prithivida/Splade_PP_en_v2",
        {
            "onnx/model.onnx": logits_onnx,
            "tokenizer.json": os.path.join(tiny_checkpoint, "tokenizer.json"),
            "tokenizer_config.json": os.path.join(tiny_checkpoint, "tokenizer_config.json"),
            "config.json": os.path.join(tiny_checkpoint, "config.json"),
        },
    )
    monkeypatch.setenv("SPLADE_ONNX_CACHE", fused_root)
    out = _run_clean(
        "import os\nfrom splade_onnx import Expander\n"
        f"e = Expander('prithivida/Splade_PP_en_v2', cache_dir={cache!r}, local_files_only=True)\n"
        "print(e.path); print(e.manifest.max_length); print(e.encode_queries('what is splade?').nnz)\n"
    )
    path = out.splitlines()[0]
    assert path.startswith(os.path.join(fused_root, "fused", "prithivida--Splade_PP_en_v2"))
    m = Manifest.read(path)
    assert m.max_length == {"query": 24, "document": 128, "model": 512}
    assert (m.activation, m.pooling, m.architecture) == ("log1p_relu", "max", "bert")
    assert m.parity["max_abs_error"] <= 1e-4 and m.source.startswith("prithivida/Splade_PP_en_v2@")
    mtime = os.path.getmtime(os.path.join(path, "model.onnx"))
    e = Expander("prithivida/Splade_PP_en_v2", cache_dir=cache, local_files_only=True)  # reused, not re-fused
    assert e.path == path and os.path.getmtime(os.path.join(path, "model.onnx")) == mtime


def test_registry_list_models_is_one_call():
    import splade_onnx
    from splade_onnx.artifact.registry import list_models, lookup

    models = splade_onnx.list_models()
    ids = {m["id"] for m in models}
    for need in [
        "prithivida/Splade_PP_en_v1",
        "prithivida/Splade_PP_en_v2",
        "telepix/PIXIE-Splade-Preview",
        "sewoong/korean-neural-sparse-encoder-v1",
        "naver/splade-v3",
        "naver/splade-cocondenser-ensembledistil",
        "opensearch-project/opensearch-neural-sparse-encoding-doc-v3-distill",
        "opensearch-project/opensearch-neural-sparse-encoding-multilingual-v1",
    ]:
        assert need in ids
    for m in models:
        assert {"architecture", "activation", "pooling", "max_length", "roles", "license", "notes"} <= set(m)
        assert m["activation"] in ("log1p_relu", "log1p_log1p_relu") and m["pooling"] in ("max", "sum")
    assert lookup("Prithivida/splade_pp_en_v2")["max_length"]["query"] == 24
    models[0]["activation"] = "changed"
    assert list_models()[0]["activation"] != "changed"
