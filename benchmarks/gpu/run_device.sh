#!/usr/bin/env bash
# The GPU recipe, run on the GPU machine in the repository root (after benchmarks/gpu/prepare.sh here):
#
#   bash benchmarks/gpu/run_device.sh stage          # copy the carried .gpu/pN parts to /tmp/parts (one per command)
#   bash benchmarks/gpu/run_device.sh run [ARGS]     # stage, join, check, install onnxruntime-gpu, run gpu_bench.py
#   bash benchmarks/gpu/run_device.sh test [ARGS]    # the same, with tests/test_gpu.py run first (log: $OUT/pytest.log)
#
# The parts stay in /tmp/parts only while the machine is kept between commands, so the commands go back to back.
# `run` installs the joined wheel with `pip --target /tmp/site` in front of PYTHONPATH (it shadows the image's CPU
# onnxruntime), puts the CUDA libraries of the image's nvidia-* pip packages on LD_LIBRARY_PATH, and runs
# benchmarks/gpu/gpu_bench.py with the splade-onnx sources (src/, export/) on PYTHONPATH. Results go to $OUT
# (gpu.json, bench.log), or to /tmp/gpu-out where OUT is unset. ARGS go to gpu_bench.py (e.g. --budget 300).
set -uo pipefail
cd "$(dirname "$0")/../.."
PARTS=/tmp/parts
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$PARTS" "$OUT"

stage() {
  for d in .gpu/p[0-9]*; do
    [ -d "$d" ] && cp -f "$d"/* "$PARTS"/
  done
  echo "parts on this machine:"
  ls -l "$PARTS"
}

case "${1:-}" in
stage)
  stage
  ;;
run | test)
  mode=$1
  shift
  stage
  name=$(cat "$PARTS/wheel.name") || { echo "wheel.name missing: the last part has not arrived"; exit 2; }
  mkdir -p /tmp/whl
  cat "$PARTS"/part.* >"/tmp/whl/$name"
  got=$(sha256sum "/tmp/whl/$name" | cut -d' ' -f1)
  if [ "$got" != "$(cat "$PARTS/wheel.sha256")" ]; then
    echo "joined wheel sha256 $got does not match: a part is missing or damaged (parts above)"
    exit 3
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "/tmp/whl/$name" || exit 4
  libs=$(python3 - <<'EOF'
import os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
dirs = set()
for root in roots:
    for d, _, files in os.walk(root):
        if any(f.startswith("lib") and ".so" in f for f in files):
            dirs.add(d)
print(":".join(sorted(dirs)))
EOF
)
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="/tmp/site:$PWD/src:$PWD/export${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu \
    --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
  python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.__file__, o.get_available_providers())"
  if [ "$mode" = test ]; then
    # the tests' fixtures: the carried splade-tiny checkpoint and SciFact documents
    mkdir -p /tmp/cache/splade-tiny
    cp -f .gpu/tiny/* /tmp/cache/splade-tiny/
    SPLADE_ONNX_CACHE=/tmp/cache SPLADE_ONNX_DATASETS="$PWD/.gpu/data" timeout "${TEST_TIMEOUT:-240}" \
      python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$OUT/pytest.log"
  fi
  timeout "${BENCH_TIMEOUT:-420}" python3 benchmarks/gpu/gpu_bench.py --out "$OUT/gpu.json" "$@" 2>&1 |
    tee "$OUT/bench.log"
  ;;
*)
  echo "usage: $0 stage | run [gpu_bench.py args] | test [gpu_bench.py args]"
  exit 1
  ;;
esac
