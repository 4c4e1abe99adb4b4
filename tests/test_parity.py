"""Fidelity: the exported artifact, run by the torch-free runtime, reproduces the torch reference within 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
from splade_onnx_export import export, splade_reference

from splade_onnx import Expander

TOL = 1e-4
# A logit within float rounding of 0 can land on either side of relu in two GEMM implementations (seen: 1 entry in
# ~60,000, weight 1.3e-6). Support must be identical except for such entries, all of weight below FLIP.
FLIP = 1e-5


def assert_parity(vectors, ref: np.ndarray, tol: float = TOL) -> float:
    assert len(vectors) == ref.shape[0]
    worst = 0.0
    flips = 0
    for i, v in enumerate(vectors):
        got = v.to_dense(ref.shape[1])
        diff_support = np.flatnonzero((got > 0) != (ref[i] > 0))
        assert np.all(got[diff_support] < FLIP) and np.all(ref[i, diff_support] < FLIP), (
            f"text {i}: support differs at {diff_support[:10].tolist()} with weights "
            f"{got[diff_support][:10].tolist()} vs {ref[i, diff_support][:10].tolist()}"
        )
        flips += len(diff_support)
        err = float(np.max(np.abs(got - ref[i])))
        assert err <= tol, f"text {i}: max |diff| {err:.3g} > {tol}"
        worst = max(worst, err)
    nnz = int((ref > 0).sum())
    assert flips <= 2 + nnz // 1000, f"{flips} near-zero support flips in {nnz} non-zeros"
    print(f"parity: max |diff| {worst:.2e}, near-zero support flips {flips} of {nnz} non-zeros")
    return worst


def test_manifest_records_parity_and_provenance(tiny_artifact):
    from splade_onnx.artifact.manifest import Manifest, sha256_file

    m = Manifest.read(tiny_artifact)
    assert m.format_version == 1 and m.architecture == "bert" and m.vocab_size == 30522
    assert m.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert m.activation == "log1p_relu" and m.pooling == "max"
    assert m.max_length == {"query": 64, "document": 256, "model": 512}
    assert m.special_tokens["cls"] == {"token": "[CLS]", "id": 101}
    assert m.parity["max_abs_error"] <= TOL and m.parity["support_equal"] is True
    assert m.model_sha256 == sha256_file(f"{tiny_artifact}/model.onnx")
    assert {"torch", "transformers", "onnx", "onnxruntime", "splade_onnx"} <= set(m.versions)


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_splade_tiny_parity_on_scifact(tiny_artifact, scifact_reference, scifact_texts, batch_size):
    """>= 200 real SciFact documents of mixed lengths, padded batches of several sizes, doc length 256."""
    assert len(scifact_texts) >= 200
    ref = scifact_reference
    e = Expander(tiny_artifact, batch_size=batch_size)
    with pytest.warns(UserWarning, match="truncated"):
        vecs = e.expand(scifact_texts, max_length=256)
    worst = assert_parity(vecs, ref)
    print(f"batch_size={batch_size}: max |diff| {worst:.2e} over {len(vecs)} docs")


UNSEEN = [
    "How do learned sparse retrievers differ from BM25?",
    "서울은 대한민국의 수도이며 가장 큰 도시입니다.",
    "I ❤️ emoji 🎉🎉 and 👩‍👩‍👧 families",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "x",
    "?",
    "Tokyo 東京 Москва القاهرة",
    "A very long text about proteins. " * 200,
]


@pytest.mark.parametrize("max_length", [64, 512])
def test_unseen_texts_parity(tiny_artifact, tiny_torch, max_length):
    model, tok = tiny_torch
    ref = splade_reference(model, tok, UNSEEN, max_length=max_length, batch_size=len(UNSEEN))
    e = Expander(tiny_artifact)
    with pytest.warns(UserWarning, match="1 of 8"):
        vecs = e.expand(UNSEEN, max_length=max_length)
    assert_parity(vecs, ref)


def test_padding_never_wins(tiny_artifact):
    """The same text alone and next to a much longer one (so heavily padded) gives the same vector."""
    e = Expander(tiny_artifact, batch_size=8)
    short = "aspirin and heart attack"
    alone = e.expand([short])[0]
    padded = e.expand([short, "long context " * 100])[0]
    np.testing.assert_array_equal(alone.indices, padded.indices)
    np.testing.assert_allclose(alone.values, padded.values, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_random_init_architectures_export_with_parity(kind, tiny_checkpoint, tmp_path, scifact_texts):
    from helpers import make_random_checkpoint
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertConfig, DistilBertConfig

    if kind == "bert":
        cfg = BertConfig(
            vocab_size=30522,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=512,
        )
    else:
        cfg = DistilBertConfig(
            vocab_size=30522, dim=64, n_layers=2, n_heads=2, hidden_dim=128, max_position_embeddings=512
        )
    ckpt = make_random_checkpoint(str(tmp_path / "ckpt"), cfg, tiny_checkpoint, seed=1, head_bias_shift=-0.6)
    art = str(tmp_path / "art")
    m = export(ckpt, art)
    assert m.architecture == kind
    expected_inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if kind == "bert" else [])
    assert m.inputs == expected_inputs
    texts = scifact_texts[::8]
    model = AutoModelForMaskedLM.from_pretrained(ckpt).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    ref = splade_reference(model, tok, texts, max_length=128, batch_size=8)
    with pytest.warns(UserWarning):
        vecs = Expander(art, batch_size=5).expand(texts, max_length=128)
    assert_parity(vecs, ref)
    nnz = np.mean([v.nnz for v in vecs])
    assert 10 < nnz < 20_000, nnz  # shifted head bias: sparse but non-trivial vectors, so the support is tested


def test_failed_export_leaves_the_previous_artifact_and_no_staging_folder(tiny_checkpoint, tiny_artifact, tmp_path):
    """Parity above tolerance raises before anything is moved into place (tolerance=0 forces the failure)."""
    import os
    import shutil

    from splade_onnx_export import ExportParityError

    out = tmp_path / "art"
    shutil.copytree(tiny_artifact, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ExportParityError, match="artifact not written"):
        export(tiny_checkpoint, str(out), tolerance=0.0, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["art"]  # the staging folder was removed


def test_export_refuses_a_non_empty_folder_and_sets_normal_permissions(tiny_checkpoint, tiny_artifact, tmp_path):
    import os
    import stat

    with pytest.raises(FileExistsError, match="already holds an artifact"):
        export(tiny_checkpoint, tiny_artifact)
    out = tmp_path / "fresh"
    export(tiny_checkpoint, str(out))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~umask


def test_export_failures_a_user_can_cause_are_export_errors(tiny_checkpoint, tmp_path):
    """A missing source, a bare encoder (no trained MLM head) and an architecture without a masked-LM class raise
    ExportError naming the source and what to pass instead; nothing is written."""
    import shutil

    from transformers import AutoModel, GPT2Config

    from splade_onnx.errors import ExportError, ExportParityError, SpladeOnnxError

    assert issubclass(ExportParityError, ExportError) and issubclass(ExportError, SpladeOnnxError)
    missing = str(tmp_path / "no-such-checkpoint")
    with pytest.raises(ExportError, match="no-such-checkpoint.*config.json"):
        export(missing, str(tmp_path / "a"))

    bare = tmp_path / "bare-encoder"
    AutoModel.from_pretrained(tiny_checkpoint).save_pretrained(bare)  # BertModel: the MLM head is not saved
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{tiny_checkpoint}/{name}", bare / name)
    with pytest.raises(ExportError, match="no trained MLM head.*cls.predictions"):
        export(str(bare), str(tmp_path / "b"))

    gpt2 = tmp_path / "gpt2"
    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=30522).save_pretrained(gpt2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{tiny_checkpoint}/{name}", gpt2 / name)
    with pytest.raises(ExportError, match="masked-LM model of type 'gpt2'"):
        export(str(gpt2), str(tmp_path / "c"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare-encoder", "gpt2"]


def test_options_that_do_not_go_together_are_export_and_value_errors():
    from splade_onnx_export import ExportOptionError
    from splade_onnx_export.options import plan_export

    from splade_onnx.errors import ExportError

    with pytest.raises(ExportOptionError, match="int8-exact' needs max pooling") as e:
        plan_export(pooling="sum", quantize="int8-exact")
    assert isinstance(e.value, ExportError) and isinstance(e.value, ValueError)
    assert plan_export(pooling="max").variant == "fp32" and plan_export(pooling="max").vocab_major
    assert not plan_export(pooling="max", quantize="int8").vocab_major
    assert plan_export(pooling="max", precision="fp16").variant == "fp16"
