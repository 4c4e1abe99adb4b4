"""Cold and warm latency of the Lambda handler (``splade_onnx.serve.lambda_handler.handler``), each run in a fresh
process, as a function platform starts one.

    nice -n 10 python benchmarks/serve_lambda_bench.py [--model artifacts/splade-tiny] [--runs 5] [--json]

Cold: from the top of the fresh process's script (before ``import splade_onnx``) to the first API Gateway event
answered (imports + model load + one query). Warm: later invocations of the same process. Also the parent-side time
from spawning the process to reading the first answer (includes the interpreter's own start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CHILD = r"""
import time
t0 = time.perf_counter()
import json, sys
from splade_onnx.serve.lambda_handler import handler
ev = {"httpMethod": "POST", "path": "/embed_sparse",
      "body": json.dumps({"inputs": "what is the role of ALDH1 in breast cancer?", "prompt_name": "query"})}
r = handler(ev, None)
cold = time.perf_counter() - t0
assert r["statusCode"] == 200, r
print("FIRST", flush=True)
warm = []
for i in range(int(sys.argv[1])):
    ev["body"] = json.dumps({"inputs": f"question {i} about cells and genes", "prompt_name": "query"})
    t1 = time.perf_counter()
    r = handler(ev, None)
    warm.append(time.perf_counter() - t1)
    assert r["statusCode"] == 200, r
print(json.dumps({"cold_s": cold, "warm_s": warm}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "artifacts", "splade-tiny"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warm", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    env = dict(os.environ, SPLADE_ONNX_MODEL=args.model)
    cold, warm, first = [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(args.warm)], stdout=subprocess.PIPE, text=True, env=env)
        assert p.stdout is not None
        line = p.stdout.readline()
        first.append(time.perf_counter() - t0)
        rest = p.stdout.read()
        if p.wait() != 0 or line.strip() != "FIRST":
            print(f"child failed: {line}{rest}", file=sys.stderr)
            return 1
        d = json.loads(rest.strip().splitlines()[-1])
        cold.append(d["cold_s"])
        warm.extend(d["warm_s"])
    warm.sort()
    res = {
        "runs": args.runs,
        "cold_ms_median": round(statistics.median(cold) * 1e3, 1),
        "cold_ms_all": [round(c * 1e3, 1) for c in cold],
        "warm_ms_median": round(statistics.median(warm) * 1e3, 2),
        "warm_ms_p99": round(warm[min(len(warm) - 1, int(0.99 * (len(warm) - 1)))] * 1e3, 2),
        "process_to_first_answer_ms_median": round(statistics.median(first) * 1e3, 1),
    }
    print(json.dumps(res) if args.json else json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
