#!/usr/bin/env bash
# Create .venv and install splade-onnx with the export, eval, fuse, payloads, bench and test extras
# (torch from the CPU wheel on disk).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q -U pip 2>&1 | grep -v "^WARNING: Location" || true
# The CPU build of torch (a bare `torch` would pull a multi-GB CUDA build).
python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
python -m pip install -q -e ".[export,eval,fuse,payloads,bench,test]" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import splade_onnx, splade_onnx_export, torch, onnxruntime" 
