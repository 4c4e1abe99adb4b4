"""The benchmark's smoke run (tiny model, 32 docs, one repetition): every part of benchmarks/run.py is exercised."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_smoke(tmp_path, tiny_checkpoint):
    env = dict(os.environ, SPLADE_ONNX_TINY=tiny_checkpoint)
    p = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads((tmp_path / "bench.json").read_text())
    cs = res["shapes"]["tiny"]["contestants"]
    for name in ("splade-onnx fp32", "splade-onnx int8", "splade-onnx int8-exact", "torch eager"):
        assert "skipped" not in cs[name], cs[name]
        c = cs[name]
        assert c["docs_per_s"] > 0 and c["query_p50_ms"] > 0 and c["cold_start_s"] > 0
        assert 0 < c["peak_rss_32x256_mb"] < 100_000
    assert cs["splade-onnx fp32"]["max_abs_diff_vs_torch"] <= 1e-4  # same vectors as the model cards' code
    assert cs["splade-onnx int8"]["max_abs_diff_vs_torch"] < 1.5
    assert cs["splade-onnx int8-exact"]["max_abs_diff_vs_torch"] <= 1e-4  # int8 speed, fp32 vectors
    assert {"int8 / fp32", "int8-exact / fp32"} <= set(res["shapes"]["tiny"]["ratios"])
    md = (tmp_path / "bench.md").read_text()
    assert "| splade-onnx fp32 |" in md
