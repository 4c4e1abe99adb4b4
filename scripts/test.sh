#!/usr/bin/env bash
# Set up and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export SPLADE_ONNX_CACHE=${SPLADE_ONNX_CACHE:-$PWD/.cache}
python -m pytest -q "$@"
