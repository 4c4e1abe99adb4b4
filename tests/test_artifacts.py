"""Corrupted and foreign artifacts are refused at load with an ArtifactError that names the file and says what to do."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from splade_onnx import Expander
from splade_onnx.artifact.manifest import MANIFEST_NAME
from splade_onnx.errors import ArtifactError

WHAT_TO_DO = ("re-export", "re-download", "upgrade splade-onnx", "splade-onnx export", "copy the model's own")


@pytest.fixture()
def art(tiny_artifact, tmp_path) -> Path:
    dest = tmp_path / "art"
    shutil.copytree(tiny_artifact, dest)
    return dest


def _refused(folder, fault: Path, **kw) -> ArtifactError:
    with pytest.raises(ArtifactError) as ei:
        Expander(str(folder), **kw)
    msg = str(ei.value)
    assert str(fault) in msg, f"the message should name {fault}: {msg}"
    assert ei.value.path == str(fault)
    assert any(w in msg for w in WHAT_TO_DO), f"the message should say what to do: {msg}"
    assert isinstance(ei.value, ValueError)
    return ei.value


def _manifest(art: Path) -> dict:
    return json.loads((art / MANIFEST_NAME).read_text())


def _write_manifest(art: Path, data: dict) -> None:
    (art / MANIFEST_NAME).write_text(json.dumps(data))


def test_intact_copy_loads(art):
    assert Expander(str(art)).expand("heart attack").nnz > 0


@pytest.mark.parametrize("name", ["model.onnx", "model.onnx_data", "tokenizer.json", MANIFEST_NAME])
def test_missing_file(art, name):
    (art / name).unlink()
    e = _refused(art, art / name)
    assert "missing" in str(e) or "no splade_onnx.json" in str(e)


def test_truncated_model_with_verify_is_a_sha_mismatch(art):
    m = art / "model.onnx"
    data = m.read_bytes()
    m.write_bytes(data[: len(data) // 3])
    e = _refused(art, m)
    assert "sha256" in str(e) and "corrupt" in str(e)


@pytest.mark.parametrize("keep", [0.33, 0.999, 0.0])
def test_truncated_model_without_verify_is_an_onnxruntime_load_error(art, keep):
    m = art / "model.onnx"
    data = m.read_bytes()
    m.write_bytes(data[: int(len(data) * keep)])
    e = _refused(art, m, verify=False)
    assert "onnxruntime cannot load" in str(e) or "not a fused SPLADE" in str(e)
    assert e.__cause__ is not None or "outputs" in str(e)


def test_weights_are_external_and_recorded(art):
    d = _manifest(art)
    assert d["files"]["model_data"] == "model.onnx_data"
    assert d["model_data_bytes"] == (art / "model.onnx_data").stat().st_size > 30e6  # the weights
    assert d["model_bytes"] == (art / "model.onnx").stat().st_size < 1e6  # the graph only


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_truncated_weights(art, keep):
    m = art / "model.onnx_data"
    data = m.read_bytes()
    m.write_bytes(data[: int(len(data) * keep)])
    e = _refused(art, m)
    assert "sha256" in str(e) and "corrupt" in str(e)
    with pytest.raises(ArtifactError, match="onnxruntime cannot load"):  # without verification: onnxruntime's check
        Expander(str(art), verify=False)


@pytest.mark.parametrize("name", ["model.onnx", "model.onnx_data"])
def test_flipped_bytes_sha_mismatch(art, name):
    m = art / name
    data = bytearray(m.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte different: only the hash can tell
    m.write_bytes(bytes(data))
    e = _refused(art, m)
    assert "does not match the manifest" in str(e)


def test_sha_in_manifest_wrong(art):
    d = _manifest(art)
    d["model_sha256"] = "0" * 64
    _write_manifest(art, d)
    _refused(art, art / "model.onnx")
    assert Expander(str(art), verify=False).expand("x y z").nnz > 0  # verify=False is the documented escape hatch


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_manifest_of_another_format_version(art, version):
    d = _manifest(art)
    d["format_version"] = version
    _write_manifest(art, d)
    e = _refused(art, art / MANIFEST_NAME)
    assert "format version" in str(e)


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "[]",
        '{"format": "something-else"}',
        "\xff\xfe garbage",
        '{"format": "splade-onnx", "format_version": 1}',
    ],
    ids=["broken", "empty", "list", "other_format", "binary", "missing_fields"],
)
def test_invalid_manifest(art, content):
    (art / MANIFEST_NAME).write_bytes(
        content.encode("utf-8", "surrogateescape") if content != "\xff\xfe garbage" else b"\xff\xfe garbage"
    )
    _refused(art, art / MANIFEST_NAME)


def test_manifest_bad_values(art):
    d = _manifest(art)
    d["activation"] = "gelu"
    _write_manifest(art, d)
    _refused(art, art / MANIFEST_NAME)


# ---------------------------------------------------------------------------------------------- tokenizers
def _wordlevel_tokenizer(n: int, specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(specials)}
    for i in range(len(vocab), n):
        vocab[f"w{i}"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_tokenizer_bigger_than_the_graph_output(art):
    _wordlevel_tokenizer(40_000).save(str(art / "tokenizer.json"))
    e = _refused(art, art / "tokenizer.json")
    assert "40000 tokens" in str(e) and "does not belong" in str(e)


def test_tokenizer_of_another_model_same_size(art):
    """Same vocabulary size, other token ids: caught by the manifest's special-token ids."""
    _wordlevel_tokenizer(30_522).save(str(art / "tokenizer.json"))
    e = _refused(art, art / "tokenizer.json")
    assert "does not belong" in str(e) and "[CLS]" in str(e) or "[PAD]" in str(e)


def test_tokenizer_much_smaller_than_the_graph_output(art, caplog):
    """A much smaller tokenizer with the model's special ids: a logged warning, not an error (random-init test models
    and padded embedding matrices pair a real output size with fewer tokens; no id can fall out of range)."""
    from tokenizers import Tokenizer

    real = json.loads((art / "tokenizer.json").read_text())
    vocab = real["model"]["vocab"]
    keep = {t: i for t, i in vocab.items() if i < 1000}
    real["model"]["vocab"] = keep
    (art / "tokenizer.json").write_text(json.dumps(real))
    assert Tokenizer.from_file(str(art / "tokenizer.json")).get_vocab_size() < 2000
    with caplog.at_level(logging.WARNING, logger="splade_onnx"):
        e = Expander(str(art))
    assert any("far fewer" in r.getMessage() and "tokenizer.json" in r.getMessage() for r in caplog.records)
    assert e.expand("the of and").nnz > 0


def test_tokenizer_not_json(art):
    (art / "tokenizer.json").write_text("this is not a tokenizer")
    _refused(art, art / "tokenizer.json")


# ---------------------------------------------------------------------------------------------- foreign graphs
def _save(model, path: Path) -> None:
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _unverified(art: Path) -> None:
    d = _manifest(art)
    d["model_sha256"] = None
    _write_manifest(art, d)


def test_non_splade_onnx_graph(art):
    """A valid ONNX graph that is not a SPLADE model (y = x + 1): refused for its outputs."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    g = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "not_splade", [x], [y], [one])
    _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), art / "model.onnx")
    _unverified(art)
    e = _refused(art, art / "model.onnx")
    assert "not a fused SPLADE graph" in str(e)


def _mlm_like(vocab: int, out_name: str, rank3: bool):
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    tti = helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["b", "s"])
    table = helper.make_tensor(
        "table",
        TensorProto.FLOAT,
        [vocab, vocab if rank3 else 1],
        np.zeros(vocab * (vocab if rank3 else 1), dtype=np.float32).tolist(),
    )
    shape = ["b", "s", vocab] if rank3 else ["b", vocab]
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, shape)
    if rank3:
        nodes = [helper.make_node("Gather", ["table", "input_ids"], [out_name])]
    else:  # [b, s] ids -> gather [b, s, 1] -> reduce to [b, 1] -> expand to [b, vocab]
        vshape = helper.make_tensor("vshape", TensorProto.INT64, [2], [1, vocab])
        nodes = [
            helper.make_node("Gather", ["table", "input_ids"], ["g"]),
            helper.make_node("ReduceMax", ["g"], ["r"], axes=[1], keepdims=0),
            helper.make_node("Expand", ["r", "vshape"], [out_name]),
        ]
    inits = [table] + ([] if rank3 else [vshape])
    g = helper.make_graph(nodes, "mlm", [ids, mask, tti], [out], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_plain_mlm_logits_onnx(art):
    """A masked-LM export ('logits' [batch, seq, vocab]): refused, pointing at splade-onnx export."""
    _save(_mlm_like(64, "logits", rank3=True), art / "model.onnx")
    _unverified(art)
    e = _refused(art, art / "model.onnx")
    assert "'logits'" in str(e) or "['logits']" in str(e)


def test_splade_named_graph_of_the_wrong_width(art):
    """Output named sparse_weights but 64 wide while the manifest (and tokenizer) say 30522."""
    _save(_mlm_like(64, "sparse_weights", rank3=False), art / "model.onnx")
    _unverified(art)
    e = _refused(art, art / "model.onnx")
    assert "vocab_size" in str(e)


def test_no_such_folder(tmp_path):
    with pytest.raises(ArtifactError, match="no such artifact folder"):
        Expander(str(tmp_path / "nope" / "nothing here"))


def test_a_file_instead_of_a_folder(art):
    with pytest.raises(ArtifactError, match="expected an artifact folder"):
        Expander(str(art / "model.onnx"))


def test_unreadable_model_file(art):
    if os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop reads")
    (art / "model.onnx").chmod(0)
    with pytest.raises(ArtifactError):
        Expander(str(art))


def test_graph_from_a_newer_onnx_names_the_reason(art):
    """IR version 99: onnxruntime's own reason survives in the message (not cut off by its C++ source location)."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    import onnx

    onnx.save(helper.make_model(g, ir_version=99), str(art / "model.onnx"))
    _unverified(art)
    e = _refused(art, art / "model.onnx")
    assert "IR version" in str(e) and "upgrade onnxruntime" in str(e)
