#!/usr/bin/env bash
# Create .venv and install splade-onnx with the export, eval, fuse, payloads, serve, bench, test and lint extras
# (torch from the CPU wheel on disk).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's failures fail this script (pipefail); only its "WARNING: Location" lines about absent local indexes are hidden
quiet() { { grep -v "^WARNING: Location" || true; } }
python -m pip install -q -U pip 2>&1 | quiet
# The CPU build of torch (a bare `torch` would pull a multi-GB CUDA build).
python -m pip install -q "torch==2.13.0" 2>&1 | quiet
python -m pip install -q -e ".[export,eval,fuse,payloads,serve,bench,test,lint,opensearch,elasticsearch,qdrant,hybrid,parquet,spark,ray]" 2>&1 | quiet
# Anserini's fat jar (Lucene, for tests/test_engines_anserini.py and benchmarks/anserini_agreement.py): the pyserini
# 1.6.0 source distribution on PyPI carries anserini-1.7.1-fatjar.jar. Fetched once; any failure stops this script.
ANSERINI_JAR=.cache/anserini/anserini-1.7.1-fatjar.jar
if [ ! -s "$ANSERINI_JAR" ]; then
  mkdir -p .cache/pyserini-sdist .cache/anserini
  python -m pip download -q --no-deps --no-binary :all: "pyserini==1.6.0" -d .cache/pyserini-sdist 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  tar -xzOf .cache/pyserini-sdist/pyserini-1.6.0.tar.gz \
    pyserini-1.6.0/pyserini/resources/jars/anserini-1.7.1-fatjar.jar > "$ANSERINI_JAR.part"
  mv "$ANSERINI_JAR.part" "$ANSERINI_JAR"
  rm -rf .cache/pyserini-sdist
fi
python -c "import splade_onnx, splade_onnx_export, torch, onnxruntime" 
