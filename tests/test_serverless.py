"""Serverless/edge: import and load from a read-only folder with no writable HOME, nothing written, no network
unless a hub id is given, and an offline flag that guarantees none (issue 6)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GUARD = textwrap.dedent("""
    import socket
    class _NoNetwork(socket.socket):
        def __init__(self, *a, **k):
            raise OSError("network guard: a socket was opened")
    socket.socket = _NoNetwork
    _orig_cc = socket.create_connection
    def _no_conn(*a, **k):
        raise OSError("network guard: create_connection called")
    socket.create_connection = _no_conn
    socket.getaddrinfo = lambda *a, **k: (_ for _ in ()).throw(OSError("network guard: DNS lookup"))
""")


def _snapshot(root: Path):
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _run(code: str, env_extra: dict, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_", "SPLADE_ONNX_"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", GUARD + code], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=120
    )


@pytest.fixture()
def readonly_artifact(tiny_artifact, tmp_path):
    dest = tmp_path / "ro" / "splade-tiny"
    shutil.copytree(tiny_artifact, dest)
    for p in [dest, *dest.iterdir()]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    (tmp_path / "ro").chmod(0o555)
    yield dest
    (tmp_path / "ro").chmod(0o755)
    dest.chmod(0o755)


def test_load_from_read_only_folder_no_home_nothing_written(readonly_artifact, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    before = _snapshot(readonly_artifact.parent)
    tmp_before = set(os.listdir(tmp_path)) | {"nonexistent-home"}
    code = textwrap.dedent(f"""
        import json, sys
        import splade_onnx
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        from splade_onnx import Expander
        e = Expander({str(readonly_artifact)!r}, local_files_only=True)
        v = e.expand("aspirin lowers the risk of heart attack")
        print(json.dumps({{"nnz": v.nnz, "top": e.decode(v, 3)}}))
    """)
    home = tmp_path / "nonexistent-home"  # (as root, a read-only HOME would not stop writes: check it stays absent)
    r = _run(code, {"HOME": str(home), "HF_HUB_OFFLINE": "1", "TMPDIR": str(work)}, work)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["nnz"] > 0
    assert _snapshot(readonly_artifact.parent) == before  # not a byte or a timestamp changed
    assert set(os.listdir(tmp_path)) <= tmp_before
    assert list(work.iterdir()) == []  # nothing written in the cwd or TMPDIR either (onnxruntime's `.ses`)
    assert not home.exists()  # onnxruntime's telemetry store (~/.cache/Microsoft/DeveloperTools) not created


def test_local_folder_never_touches_the_network_even_online(tiny_artifact, tmp_path):
    code = f"from splade_onnx import Expander; print(Expander({tiny_artifact!r}).expand('x y').nnz)"
    home = tmp_path / "home"
    r = _run(code, {"HOME": str(home)}, tmp_path)  # no offline flag: a local folder needs no network anyway
    assert r.returncode == 0, r.stderr
    assert not home.exists()  # and onnxruntime's telemetry (device id, event store, uploads) stays off


def test_telemetry_opt_out_is_needed_and_respected(tiny_artifact, tmp_path):
    """Without the opt-out this onnxruntime writes a device id under HOME at the first session (the reason
    splade_onnx sets ORT_DISABLE_TELEMETRY=1); a user who sets ORT_DISABLE_TELEMETRY=0 keeps their choice."""
    import onnxruntime as ort

    code = f"from splade_onnx import Expander; Expander({tiny_artifact!r}).expand('x y')"
    home = tmp_path / "home"
    r = _run(code, {"HOME": str(home), "ORT_DISABLE_TELEMETRY": "0"}, tmp_path)
    assert r.returncode == 0, r.stderr
    written = sorted(str(p.relative_to(home)) for p in home.rglob("*")) if home.exists() else []
    if not written:
        pytest.skip(f"onnxruntime {ort.__version__} writes no telemetry files: nothing to opt out of")
    assert any("onnxruntime" in w for w in written), written


@pytest.mark.parametrize("how", ["kwarg", "env"])
def test_offline_flag_with_a_hub_id_fails_fast_without_a_socket(tmp_path, how):
    kw = "local_files_only=True" if how == "kwarg" else ""
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    if how == "env":
        env["SPLADE_ONNX_OFFLINE"] = "1"
    code = textwrap.dedent(f"""
        import time
        from splade_onnx import Expander
        from splade_onnx.errors import ArtifactError
        t = time.monotonic()
        try:
            Expander("naver/splade-v3", {kw})
        except ArtifactError as e:
            msg = str(e)
            print("REFUSED", round(time.monotonic() - t, 1), msg)
        else:
            print("LOADED")
    """)
    r = _run(code, env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "REFUSED" in r.stdout, r.stdout + r.stderr
    assert "network guard" not in r.stdout + r.stderr  # refused before any socket, not by the guard
    assert "naver/splade-v3" in r.stdout and ("offline" in r.stdout or "cache" in r.stdout)
