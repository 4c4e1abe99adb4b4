"""Peak memory of encoding one 8,192-token document by windows on the ModernBERT-base shape (vocab 50,000).

    python benchmarks/long_doc_memory.py [--window 512] [--stride 256] [--budget-mb 128] [--work DIR]

1. builds (once, cached in --work) a random-init ModernBERT-base checkpoint offline: 22 layers, hidden 768, 12 heads,
   intermediate 1152, vocab 50,000, 8,192 positions; the tokenizer is splade-tiny's BERT wordpiece tokenizer (30,522
   ids; the model's 50,000 output weights are what sizes the logits) and exports it with ``splade_onnx_export.export``;
2. in a fresh subprocess that imports only ``splade_onnx`` (no torch), loads the artifact, encodes one real SciFact
   text of >= 8,192 tokens with ``long_documents="window"``, and reports the process's peak RSS (``ru_maxrss``) after
   loading and after encoding. The bound to meet: 2 GB for the whole process. Full-context logits alone would be
   8,192 x 50,000 x 4 B = 1.6 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {tests!r})
from conftest import read_jsonl, doc_text
from splade_onnx import Expander
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
assert "torch" not in sys.modules
e = Expander({art!r}, logits_budget_mb={budget})
after_load = peak_mb()
docs = [doc_text(d) for d in read_jsonl({corpus!r}, limit=400)]
text, n = "", 0
for d in docs:
    text += " " + d
    n = len(e.tokenizer.encode(text).ids)
    if n >= 8192:
        break
ids = e.tokenizer.encode(text).ids[1:8191]   # exactly 8,190 content tokens + [CLS]/[SEP] = 8,192
text = e.tokenizer.decode(ids)
n = len(e.tokenizer.encode(text).ids)
from splade_onnx.encode.windows import count_windows
t = time.perf_counter()
v = e.expand(text, max_length={window}, long_documents="window", stride={stride})
dt = time.perf_counter() - t
print(json.dumps({{"tokens": n, "windows": count_windows(e.tokenizer, text, {window}, {stride}), "nnz": v.nnz,
                  "seconds": round(dt, 2), "peak_rss_mb_after_load": round(after_load, 1),
                  "peak_rss_mb": round(peak_mb(), 1), "torch_loaded": "torch" in sys.modules,
                  "vocab": e.vocab_size, "window": {window}, "stride": {stride}, "budget_mb": {budget}}}))
"""


def build(work: str) -> str:
    art = os.path.join(work, "modernbert-base-random")
    if os.path.isfile(os.path.join(art, "splade_onnx.json")):
        return art
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from helpers import make_random_checkpoint
    from splade_onnx_export import export, fetch_splade_tiny
    from transformers import ModernBertConfig

    tiny = fetch_splade_tiny(os.path.join(REPO, ".cache", "splade-tiny"))
    cfg = ModernBertConfig(
        vocab_size=50000,
        hidden_size=768,
        num_hidden_layers=22,
        num_attention_heads=12,
        intermediate_size=1152,
        max_position_embeddings=8192,
        pad_token_id=0,
        cls_token_id=101,
        sep_token_id=102,
        bos_token_id=101,
        eos_token_id=102,
    )
    ckpt = make_random_checkpoint(os.path.join(work, "modernbert-base-ckpt"), cfg, tiny, seed=0)
    t = time.perf_counter()
    export(
        ckpt,
        art,
        query_max_length=64,
        document_max_length=512,
        source_name="random-init ModernBERT-base shape",
        overwrite=True,
    )
    print(f"exported {art} in {time.perf_counter() - t:.0f}s", file=sys.stderr)
    return art


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=os.path.join(REPO, ".cache", "bench-long-doc"))
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--stride", type=int, default=255)
    ap.add_argument("--budget-mb", type=float, default=128)
    ap.add_argument("--artifact", default=None, help="use this artifact instead of building one")
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    if args.build_only:
        print(build(args.work))
        return 0
    art = args.artifact
    if art is None:
        # build in its own process: Linux carries a parent's peak RSS (ru_maxrss) into a forked child, so the
        # measuring child must be forked from a process that never held torch and the export
        art = os.path.join(args.work, "modernbert-base-random")
        if not os.path.isfile(os.path.join(art, "splade_onnx.json")):
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--build-only", "--work", args.work],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    code = CHILD.format(
        tests=os.path.join(REPO, "tests"),
        art=art,
        budget=args.budget_mb,
        window=args.window,
        stride=args.stride,
        corpus=os.path.join(REPO, "..", "shared", "datasets", "scifact", "corpus.jsonl"),
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        return out.returncode
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["within_2gb"] = res["peak_rss_mb"] < 2048
    print(json.dumps(res, indent=2))
    return 0 if res["within_2gb"] else 1


if __name__ == "__main__":
    sys.exit(main())
