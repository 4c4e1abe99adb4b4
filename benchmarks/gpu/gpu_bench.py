"""The CUDA path on a real GPU: parity, throughput against torch, memory, first-vector latency, in one run.

    python benchmarks/gpu/gpu_bench.py --out gpu.json              # on the GPU machine (benchmarks/gpu/run_device.sh)
    python benchmarks/gpu/gpu_bench.py --smoke --out /tmp/smoke.json   # anywhere: small sizes; without CUDA the
                                                                       # onnxruntime and torch parts run on CPU

What it measures (each section in its own try block: a failure is written into the results as
``errors[section]`` and the other sections still run; the JSON is rewritten after every section; a global time
budget, ``--budget`` seconds, skips what no longer fits):

- ``env``: GPU, driver, clocks, versions, onnxruntime's providers.
- ``build``: splade-tiny (carried checkpoint) and a bert-base-shaped BERT with random weights (head bias shifted so
  documents keep about 250 non-zeros) built here; both exported fp32 and fp16 with this project's exporter
  (``splade_onnx_export.export``), four exports in parallel processes.
- ``gemm``: the GPU's GEMM bound in this run: 8192^3 torch matmuls in fp16, fp32 (TF32 off) and TF32.
- ``torch_eager``: the model cards' code (``AutoModelForMaskedLM``, ``max_t log(1 + relu(logits)) * mask``), fp32 and
  fp16 autocast, on CUDA; measured while the exports run (on other CPU cores) and again, interleaved with
  onnxruntime, in ``throughput``.
- ``parity``: CUDA fp32 against CPU fp32 on real texts at batch 1, 7 and 32 (max |diff|, support), with onnxruntime's
  default TF32 and with ``use_tf32=0``; the fp16 artifact on CUDA against the CPU fp32 artifact (max/mean error,
  support agreement, top-20 token agreement); node placement per execution provider.
- ``throughput``: docs/s on fixed-length batches of real tokens (no padding), batch 32 and 128, 256 and 512 tokens:
  onnxruntime fp32 / fp32 without TF32 / fp16, IO binding on and off, against torch fp32 and fp16 autocast; every
  contestant takes token ids from numpy and returns the float32 ``[batch, vocab]`` weights to numpy. Achieved
  TFLOP/s and the fraction of the fp16 GEMM bound from the model's FLOP count.
- ``memory``: peak GPU memory of each contestant at batch 128 (256 and 512 tokens), each in a fresh process: NVML's
  memory of that process (device-wide used minus the baseline where per-process figures are missing), sampled every
  5 ms, plus ``torch.cuda.max_memory_allocated`` for torch. onnxruntime runs with its default CUDA arena settings.
  The same fresh processes time the first vector: interpreter start, import, load, one text.
- ``e2e``: ``Expander.expand`` docs/s on real documents (tokenizing, batching, sparse vectors) on CUDA, with the
  default logits budget and a large one.
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
import threading
import time
import traceback
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BASE_SHAPE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
SMOKE_SHAPE = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)
TARGET_NNZ = 250
VOCAB = 30522
T0 = time.time()
TARGET_S = [0.8]  # seconds of timed calls per measurement (the smoke run sets it low)


def log(msg: str) -> None:
    print(f"[gpu-bench {time.time() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ results, budget
class Run:
    def __init__(self, out: str, budget: float) -> None:
        self.out = out
        self.deadline = T0 + budget
        self.results: Dict[str, Any] = {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "errors": {},
            "section_seconds": {},
        }

    def left(self) -> float:
        return self.deadline - time.time()

    def save(self) -> None:
        if not self.out:
            return
        self.results["elapsed_s"] = round(time.time() - T0, 1)
        os.makedirs(os.path.dirname(os.path.abspath(self.out)), exist_ok=True)
        tmp = self.out + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.results, f, indent=1, default=str)
        os.replace(tmp, self.out)

    def section(self, name: str, fn: Callable[[], Any], need: float = 0.0) -> Any:
        if self.left() < need:
            self.results["errors"][name] = f"skipped: {self.left():.0f}s of the budget left, {need:.0f}s needed"
            log(self.results["errors"][name] + f" ({name})")
            self.save()
            return None
        log(f"== {name}")
        t = time.time()
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - every section reports its error and the run goes on
            self.results["errors"][name] = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}"
            log(f"{name} FAILED: {type(e).__name__}: {e}")
            return None
        finally:
            self.results["section_seconds"][name] = round(time.time() - t, 1)
            self.save()


# ------------------------------------------------------------------------------------------------------ helpers
def read_texts(path: str) -> Tuple[List[str], List[str]]:
    docs, queries = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            (docs if r["kind"] == "doc" else queries).append(r["text"])
    return docs, queries


def parity_texts(docs: List[str], queries: List[str], n: int = 32) -> List[str]:
    """Documents and queries interleaved: lengths from a few tokens to the truncation length (padding exercised)."""
    out: List[str] = []
    for d, q in zip(docs, queries):
        out += [d, q]
    return (out + docs)[:n]


def token_stream(tokenizer_json: str, docs: List[str]) -> List[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    ids: List[int] = []
    for e in tok.encode_batch(docs[:600], add_special_tokens=False):
        ids += e.ids
    return ids


def token_batch(stream: List[int], batch: int, seq: int, offset: int = 0):
    """``[batch, seq]`` int64 ids of real text: ``[CLS] ... [SEP]`` windows cut from the concatenated documents."""
    import numpy as np

    body = seq - 2
    need = batch * body
    arr = np.asarray(stream, dtype=np.int64)
    reps = (offset + need) // len(arr) + 1
    flat = np.tile(arr, reps)[offset : offset + need].reshape(batch, body)
    ids = np.empty((batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1], ids[:, 1:-1] = 101, 102, flat
    return ids


def feeds_for(input_names: List[str], ids):
    import numpy as np

    f = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in input_names:
        f["token_type_ids"] = np.zeros_like(ids)
    return f


def bert_flops(cfg: Dict[str, int], seq: int) -> float:
    """Multiply-add FLOPs (x2) of one sequence through BERT + the MLM head (embeddings and softmax left out)."""
    h, layers, inter, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab"]
    per_layer = 2 * seq * (4 * h * h + 2 * h * inter) + 2 * 2 * seq * seq * h
    head = 2 * seq * h * h + 2 * seq * h * vocab
    return float(layers * per_layer + head)


def time_calls(fn: Callable[[], Any], *, warmup: int = 2, min_reps: int = 3, max_reps: int = 15) -> Tuple[float, list]:
    """Median seconds per call after ``warmup`` calls; the repetitions fill about ``TARGET_S[0]`` seconds."""
    target_s = TARGET_S[0]
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    times = [first]
    reps = int(min(max_reps, max(min_reps, target_s / max(first, 1e-6))))
    for _ in range(reps - 1):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def nvidia_smi() -> Dict[str, str]:
    q = "name,driver_version,memory.total,memory.used,clocks.sm,clocks.mem,temperature.gpu,power.draw"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
        return dict(zip(q.split(","), [x.strip() for x in out.split("\n")[0].split(",")]))
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


def torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------------ torch side
def load_torch(ckpt: str, device: str):
    from transformers import AutoModelForMaskedLM

    return AutoModelForMaskedLM.from_pretrained(ckpt).to(device).eval()


def torch_splade(model, ids_np, fp16: bool, device: str):
    """The model cards' code: ``max_t log(1 + relu(logits)) * mask``; token ids in, float32 numpy out."""
    import torch

    with torch.inference_mode(), torch.autocast(device, dtype=torch.float16, enabled=fp16 and device == "cuda"):
        ids = torch.from_numpy(ids_np).to(device)
        mask = torch.ones_like(ids)
        logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
        vec = torch.max(torch.log(1 + torch.relu(logits)) * mask.unsqueeze(-1), dim=1).values
        return vec.float().cpu().numpy()


# ------------------------------------------------------------------------------------------------------ build
def build_base_ckpt(dest: str, tiny: str, docs: List[str], shape: Dict[str, int]) -> str:
    """A BERT of ``shape`` with random weights (seed 0) and splade-tiny's tokenizer; the head bias is shifted so a
    document keeps about ``TARGET_NNZ`` non-zeros (a trained SPLADE model's sparsity)."""
    if os.path.isfile(os.path.join(dest, "config.json")):
        return dest
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=VOCAB, **shape)).eval()
    tok = AutoTokenizer.from_pretrained(tiny)
    with torch.inference_mode():
        enc = tok(docs[:4], truncation=True, max_length=256, padding=True, return_tensors="pt")
        mx = model(**enc).logits.max(dim=1).values
        shift = -float(torch.quantile(mx.flatten().float(), 1.0 - TARGET_NNZ / mx.shape[1]))
        model.get_output_embeddings().bias.add_(shift)
    tmp = dest + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, dest)
    return dest


def start_export(src: str, dst: str, precision: str, name: str, fp16_tol: Optional[float], logdir: str, threads: int):
    if os.path.isfile(os.path.join(dst, "splade_onnx.json")):
        return None
    os.makedirs(logdir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--child", "export", "--src", src, "--dst", dst, "--precision", precision]
    cmd += ["--name", name, "--threads", str(threads)]
    if fp16_tol is not None:
        cmd += ["--fp16-tolerance", str(fp16_tol)]
    f = open(os.path.join(logdir, os.path.basename(dst) + ".log"), "w")  # noqa: SIM115 - closed by wait_exports
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env), f, time.time()


def child_export(a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    from splade_onnx_export import export

    m = export(
        a.src,
        a.dst,
        source_name=a.name,
        precision=a.precision,
        fp16_tolerance=a.fp16_tolerance,
        overwrite=True,
    )
    print(json.dumps({"parity": m.parity, "quantization": m.quantization}))


# ------------------------------------------------------------------------------------------------------ onnxruntime
def ort_providers(kind: str, device: str):
    """``kind``: cuda (onnxruntime's defaults: TF32 on) or cuda-notf32; CPU for the smoke run without CUDA."""
    if device != "cuda":
        return ["cpu"]
    if kind == "cuda-notf32":
        return [("CUDAExecutionProvider", {"use_tf32": "0"})]
    return ["cuda"]


def ort_session(path: str, kind: str, device: str):
    from splade_onnx.artifact.manifest import MODEL_NAME, Manifest
    from splade_onnx.encode.session import SpladeSession

    man = Manifest.read(path)
    s = SpladeSession(
        os.path.join(path, man.files.get("model", MODEL_NAME)), man, providers=ort_providers(kind, device)
    )
    if device == "cuda" and s.providers[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"the CUDA execution provider was not used: providers {s.providers}")
    return s


def expander(path: str, kind: str, device: str, **kw):
    from splade_onnx import Expander

    e = Expander(path, providers=ort_providers(kind, device), **kw)
    if device == "cuda" and e.providers[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"the CUDA execution provider was not used: providers {e.providers}")
    return e


def node_placement(path: str, device: str, workdir: str) -> Dict[str, Any]:
    """Which execution provider runs each node (onnxruntime's profiler, one small run)."""
    import collections

    import numpy as np
    import onnxruntime as ort

    from splade_onnx.artifact.manifest import Manifest

    man = Manifest.read(path)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(workdir, "prof_" + os.path.basename(path))
    provs = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    s = ort.InferenceSession(os.path.join(path, man.files.get("model", "model.onnx")), so, providers=provs)
    ids = np.full((2, 16), 2000, dtype=np.int64)
    s.run(None, feeds_for([i.name for i in s.get_inputs()], ids))
    prof = s.end_profiling()
    with open(prof, encoding="utf-8") as f:
        events = json.load(f)
    per: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    seen = set()
    for ev in events:
        args = ev.get("args") or {}
        if ev.get("cat") == "Node" and "provider" in args and ev.get("name", "").endswith("_kernel_time"):
            node = ev["name"][: -len("_kernel_time")]
            if node in seen:
                continue
            seen.add(node)
            per[args["provider"]][args.get("op_name", "?")] += 1
    os.remove(prof)
    return {p: dict(c) for p, c in per.items()}


# ------------------------------------------------------------------------------------------------------ NVML
class GpuMemory:
    """Peak GPU memory of this process, sampled every 5 ms in a thread: NVML's per-process figure where the driver
    reports it, else device-wide used minus the baseline taken at construction (before CUDA was initialised)."""

    def __init__(self) -> None:
        import pynvml

        self.nv = pynvml
        pynvml.nvmlInit()
        self.h = pynvml.nvmlDeviceGetHandleByIndex(0)
        self.pid = os.getpid()
        self.baseline = pynvml.nvmlDeviceGetMemoryInfo(self.h).used
        self.dev_peak = self.pid_peak = 0
        self.phase_dev = self.phase_pid = 0
        self.pid_seen = False
        self.stop = False
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _sample(self) -> None:
        used = self.nv.nvmlDeviceGetMemoryInfo(self.h).used - self.baseline
        mine = 0
        try:
            for p in self.nv.nvmlDeviceGetComputeRunningProcesses(self.h):
                if p.pid == self.pid and p.usedGpuMemory is not None:
                    mine = int(p.usedGpuMemory)
                    self.pid_seen = True
        except self.nv.NVMLError:
            pass
        self.dev_peak, self.phase_dev = max(self.dev_peak, used), max(self.phase_dev, used)
        self.pid_peak, self.phase_pid = max(self.pid_peak, mine), max(self.phase_pid, mine)

    def _loop(self) -> None:
        while not self.stop:
            self._sample()
            time.sleep(0.005)

    def mark(self) -> Dict[str, Any]:
        """Peaks since the last mark (MiB), then a new phase."""
        self._sample()
        mib = 1 << 20
        out = {
            "device_used_delta_mib": round(self.phase_dev / mib, 1),
            "process_mib": round(self.phase_pid / mib, 1) if self.pid_seen else None,
            "cumulative_peak_mib": round((self.pid_peak if self.pid_seen else self.dev_peak) / mib, 1),
        }
        self.phase_dev = self.phase_pid = 0
        return out


def child_fresh(a) -> None:
    """A fresh process: first-vector latency (from the parent's launch time), then peak GPU memory of batch-128
    runs at each length. ``--impl ort`` runs the artifact through this project; ``--impl torch`` the model cards'
    code."""
    launched = float(a.launched)
    t_start = time.time()
    mem = None
    try:
        mem = GpuMemory()
    except Exception as e:  # noqa: BLE001 - NVML missing (CPU smoke run): latency only
        mem_error = f"{type(e).__name__}: {e}"
    out: Dict[str, Any] = {"impl": a.impl, "model": a.model, "precision": a.precision}
    text = "Aspirin lowers the risk of a second heart attack."
    docs, _ = read_texts(a.texts)
    stream = token_stream(os.path.join(a.tokenizer_dir, "tokenizer.json"), docs)
    t_ready = time.time()
    if a.impl == "ort":
        from splade_onnx import Expander

        t_import = time.time()
        e = Expander(a.model, providers=ort_providers("cuda", a.device))
        t_load = time.time()
        e.expand(text)
        t_first = time.time()
        e.expand(text)
        t_second = time.time()
        out["providers"] = e.providers
        sess = e._session  # the Expander's SpladeSession: full batches, no logits-budget split
        run = lambda ids: sess.run(feeds_for(sess.input_names, ids))  # noqa: E731
    else:
        import torch
        from transformers import AutoTokenizer

        t_import = time.time()
        tok = AutoTokenizer.from_pretrained(a.model)
        model = load_torch(a.model, a.device)
        t_load = time.time()
        fp16 = a.precision == "fp16"

        def one(t: str):
            enc = tok([t], return_tensors="pt").to(a.device)
            with torch.inference_mode(), torch.autocast(a.device, dtype=torch.float16, enabled=fp16):
                logits = model(**enc).logits
                return torch.max(torch.log(1 + torch.relu(logits)) * enc["attention_mask"].unsqueeze(-1), dim=1)[
                    0
                ].cpu()

        one(text)
        t_first = time.time()
        one(text)
        t_second = time.time()
        run = lambda ids: torch_splade(model, ids, fp16, a.device)  # noqa: E731
    out["latency_s"] = {
        "interpreter_start": round(t_start - launched, 3),
        "import": round(t_import - t_ready, 3),
        "load": round(t_load - t_import, 3),
        "first_vector": round(t_first - t_load, 3),
        "fresh_process_to_first_vector": round(t_first - launched - (t_ready - t_start), 3),
        "second_vector": round(t_second - t_first, 3),
    }
    if mem is None:
        out["memory_error"] = mem_error
    else:
        out["memory"] = {"after_first_vector": mem.mark()}
    for seq in a.seqs:
        ids = token_batch(stream, a.batch, seq)
        if a.impl == "torch":
            import torch

            torch.cuda.reset_peak_memory_stats() if a.device == "cuda" else None
        run(ids)
        run(ids)
        if mem is not None:
            out["memory"][f"{a.batch}x{seq}"] = mem.mark()
            if a.impl == "torch" and a.device == "cuda":
                import torch

                out["memory"][f"{a.batch}x{seq}"]["torch_max_allocated_mib"] = round(
                    torch.cuda.max_memory_allocated() / (1 << 20), 1
                )
                out["memory"][f"{a.batch}x{seq}"]["torch_max_reserved_mib"] = round(
                    torch.cuda.max_memory_reserved() / (1 << 20), 1
                )
    if mem is not None:
        mem.stop = True
        out["memory"]["pid_reported_by_nvml"] = mem.pid_seen
    print("RESULT " + json.dumps(out), flush=True)


def run_fresh(impl: str, model: str, precision: str, tokdir: str, texts: str, device: str, batch: int, seqs, timeout):
    cmd = [sys.executable, __file__, "--child", "fresh", "--impl", impl, "--model", model, "--precision", precision]
    cmd += ["--tokenizer-dir", tokdir, "--texts", texts, "--device", device, "--batch", str(batch)]
    cmd += ["--seqs", *[str(s) for s in seqs], "--launched"]
    launched = time.time()
    p = subprocess.run(cmd + [repr(launched)], capture_output=True, text=True, timeout=timeout)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"exit {p.returncode}: {(p.stderr or p.stdout)[-1500:]}")


# ------------------------------------------------------------------------------------------------------ main
def main() -> None:  # noqa: C901 - one linear script, sections in order
    import warnings

    warnings.filterwarnings("ignore", message=".*exceed max_length.*")  # the parity texts are truncated on purpose
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "tmp", "gpu.json"))
    ap.add_argument("--tiny", default=os.path.join(REPO, ".gpu", "tiny"), help="splade-tiny checkpoint folder")
    ap.add_argument("--texts", default=os.path.join(REPO, ".gpu", "data", "texts.jsonl"))
    ap.add_argument("--work", default="/tmp/gpu-work", help="checkpoints and artifacts built here (kept for reruns)")
    ap.add_argument("--budget", type=float, default=330.0, help="seconds; sections that no longer fit are skipped")
    ap.add_argument("--smoke", action="store_true", help="small models and sizes; CPU where there is no CUDA")
    ap.add_argument("--only", nargs="*", default=None, help="sections to run (default: all)")
    ap.add_argument("--models", nargs="*", default=["tiny", "base"], help="models to build and measure")
    # child processes
    ap.add_argument("--child", choices=["export", "fresh"])
    ap.add_argument("--src")
    ap.add_argument("--dst")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--name")
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--fp16-tolerance", type=float, default=None)
    ap.add_argument("--impl")
    ap.add_argument("--model")
    ap.add_argument("--tokenizer-dir")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seqs", type=int, nargs="*", default=[256, 512])
    ap.add_argument("--launched")
    a = ap.parse_args()
    if a.child == "export":
        return child_export(a)
    if a.child == "fresh":
        return child_fresh(a)

    import numpy as np

    if a.smoke:
        TARGET_S[0] = 0.05
    R = Run(a.out, a.budget)
    res = R.results
    res["smoke"] = a.smoke
    want = lambda s: a.only is None or s in a.only  # noqa: E731
    os.makedirs(a.work, exist_ok=True)
    docs, queries = read_texts(a.texts)
    shape = SMOKE_SHAPE if a.smoke else BASE_SHAPE
    shapes = [(4, 32), (8, 64)] if a.smoke else [(128, 256), (32, 256), (128, 512), (32, 512)]
    mem_batch, mem_seqs = (8, [32, 64]) if a.smoke else (128, [256, 512])
    models = {"tiny": {"ckpt": a.tiny}, "base": {"ckpt": os.path.join(a.work, "base-ckpt")}}
    models = {k: v for k, v in models.items() if k in a.models}
    for name, m in models.items():
        m["fp32"] = os.path.join(a.work, f"{name}-fp32")
        m["fp16"] = os.path.join(a.work, f"{name}-fp16")

    # ---------------------------------------------------------------- env
    def env():
        import numpy
        import onnxruntime as ort

        info: Dict[str, Any] = {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "onnxruntime": ort.__version__,
            "onnxruntime_file": ort.__file__,
            "providers": ort.get_available_providers(),
            "nvidia_smi": nvidia_smi(),
            "cpu_count": os.cpu_count(),
        }
        try:
            info["onnxruntime_build"] = ort.get_build_info()
        except Exception:  # noqa: BLE001
            pass
        import torch
        import transformers

        info.update(torch=torch.__version__, transformers=transformers.__version__, torch_cuda=torch.version.cuda)
        info["torch_sees_gpu"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name(0)
        from splade_onnx import doctor

        info["doctor"] = {k: v for k, v in doctor().items() if k in ("onnxruntime", "providers", "conflict")}
        res["env"] = info
        log(f"env: {info['nvidia_smi'].get('name')} torch {info['torch']} onnxruntime {info['onnxruntime']}")

    R.section("env", env)
    device = "cuda" if res.get("env", {}).get("torch_sees_gpu") else "cpu"
    res["device"] = device
    if device == "cpu" and not a.smoke:
        res["errors"]["device"] = "torch sees no GPU: the CUDA parts run on CPU (numbers are not GPU figures)"

    # ---------------------------------------------------------------- build: checkpoints, exports in parallel
    procs: Dict[str, Any] = {}

    def build():
        if "base" in models:
            build_base_ckpt(models["base"]["ckpt"], a.tiny, docs, shape)
        threads = max(1, min(4, (os.cpu_count() or 4) // 5))
        logdir = os.path.join(a.work, "logs")
        for name, m in models.items():
            src = m["ckpt"]
            label = "rasyosef/splade-tiny" if name == "tiny" else "bert-base shape (random weights)"
            for prec in ("fp32", "fp16"):
                tol = 0.5 if (name == "base" and prec == "fp16") else None  # random weights: record, do not refuse
                p = start_export(src, m[prec], prec, label, tol, logdir, threads)
                if p is not None:
                    procs[f"{name}-{prec}"] = p
        res["build"] = {"export_threads_each": threads, "started": sorted(procs)}

    if want("build"):
        R.section("build", build)

    def wait_exports():
        out = res.setdefault("exports", {})
        for key, (p, f, started) in procs.items():
            try:
                p.wait(timeout=max(5.0, R.left() - 60))
            except subprocess.TimeoutExpired:
                p.kill()
            f.close()
            with open(f.name, encoding="utf-8") as fh:
                tail = fh.read()[-2500:]
            out[key] = {"exit": p.returncode, "seconds": round(time.time() - started, 1)}
            if p.returncode != 0:
                out[key]["log_tail"] = tail
                res["errors"][f"export {key}"] = tail[-800:]
        procs.clear()
        for name, m in models.items():
            for prec in ("fp32", "fp16"):
                mf = os.path.join(m[prec], "splade_onnx.json")
                if os.path.isfile(mf):
                    with open(mf, encoding="utf-8") as fh:
                        man = json.load(fh)
                    out.setdefault(f"{name}-{prec}", {}).update(
                        parity=man.get("parity"), quantization=man.get("quantization"), versions=man.get("versions")
                    )

    # ---------------------------------------------------------------- GEMM bound (GPU only; the exports use CPUs)
    def gemm():
        import torch

        n = 512 if a.smoke else 8192
        out = {"n": n}
        for label, dt, tf32 in (
            ("fp16", torch.float16, False),
            ("fp32", torch.float32, False),
            ("tf32", torch.float32, True),
        ):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            x = torch.randn(n, n, device=device, dtype=dt)
            y = torch.randn(n, n, device=device, dtype=dt)
            reps = 10 if device == "cuda" else 2
            for _ in range(3):
                x @ y
            sync()
            times = []
            for _ in range(reps):
                if device == "cuda":
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    x @ y
                    e.record()
                    e.synchronize()
                    times.append(s.elapsed_time(e) / 1e3)
                else:
                    t = time.perf_counter()
                    x @ y
                    times.append(time.perf_counter() - t)
            out[f"{label}_tflops"] = round(2 * n**3 / statistics.median(times) / 1e12, 1)
            del x, y
        torch.backends.cuda.matmul.allow_tf32 = False
        res["gemm"] = out
        log(f"gemm: {out}")

    if want("gemm"):
        R.section("gemm", gemm)

    streams = {}
    for name, m in models.items():
        tj = os.path.join(m["ckpt"], "tokenizer.json")
        streams[name] = token_stream(tj if os.path.isfile(tj) else os.path.join(a.tiny, "tokenizer.json"), docs)

    # ---------------------------------------------------------------- torch eager (while the exports run)
    def torch_eager(key: str, shapes_: List[Tuple[int, int]]):
        import torch

        out = res.setdefault(key, {})
        for name in [n for n in ("base", "tiny") if n in models]:
            model = load_torch(models[name]["ckpt"], device)
            for b, s in shapes_:
                if R.left() < 40:
                    out[f"{name} {b}x{s}"] = "skipped: budget"
                    continue
                ids = token_batch(streams[name], b, s)
                for prec in ("fp32", "fp16"):
                    try:
                        t, _ = time_calls(partial(torch_splade, model, ids, prec == "fp16", device))
                        out[f"{name} {b}x{s} torch {prec}"] = round(b / t, 1)
                    except Exception as e:  # noqa: BLE001 - e.g. out of memory: recorded, the others go on
                        out[f"{name} {b}x{s} torch {prec}"] = f"{type(e).__name__}: {str(e)[:200]}"
                        torch.cuda.empty_cache() if device == "cuda" else None
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
        log(f"{key}: {out}")

    if want("torch_eager"):
        R.section("torch_eager", lambda: torch_eager("torch_eager_during_exports", shapes), need=60)

    if want("build"):
        R.section("wait_exports", wait_exports)

    # ---------------------------------------------------------------- parity
    def parity():
        ptexts = parity_texts(docs, queries, 32)
        out = res.setdefault("parity", {})

        def dense(vs):
            return np.stack([v.to_dense(VOCAB) for v in vs])

        def compare(ref, got) -> Dict[str, Any]:
            d = np.abs(ref - got)
            sr, sg = ref > 0, got > 0
            top = []
            for r, g in zip(ref, got):
                tr = set(np.argsort(-r, kind="stable")[:20].tolist())
                tg = set(np.argsort(-g, kind="stable")[:20].tolist())
                top.append(len(tr & tg) / 20)
            return {
                "max_abs_diff": float(d.max()),
                "mean_abs_diff_on_support": float(d[sr | sg].mean()) if (sr | sg).any() else 0.0,
                "support_equal": bool(np.array_equal(sr, sg)),
                "support_mismatches": int((sr != sg).sum()),
                "support_size": int(sr.sum()),
                "support_jaccard": float((sr & sg).sum() / max(1, (sr | sg).sum())),
                "top20_agreement_mean": float(np.mean(top)),
                "top20_agreement_min": float(np.min(top)),
            }

        for name in [n for n in ("tiny", "base") if n in models]:
            m = models[name]
            if not os.path.isfile(os.path.join(m["fp32"], "splade_onnx.json")):
                out[name] = "no fp32 artifact (export failed)"
                continue
            cpu = expander(m["fp32"], "cpu", "cpu", batch_size=32)
            ref = {b: dense(cpu.expand(ptexts, batch_size=b)) for b in (1, 7, 32)}
            for kind in ("cuda", "cuda-notf32"):
                try:
                    g = expander(m["fp32"], kind, device)
                    for b in (1, 7, 32):
                        out[f"{name} fp32 {kind} batch {b}"] = compare(ref[b], dense(g.expand(ptexts, batch_size=b)))
                    if kind == "cuda":
                        nob = expander(m["fp32"], kind, device, io_binding=False)
                        same = dense(nob.expand(ptexts, batch_size=32))
                        out[f"{name} fp32 cuda io_binding off vs on, batch 32"] = compare(
                            dense(g.expand(ptexts, batch_size=32)), same
                        )
                        del nob
                    del g
                except Exception as e:  # noqa: BLE001 - recorded; the other kinds and the fp16 check go on
                    out[f"{name} fp32 {kind}"] = f"{type(e).__name__}: {str(e)[:500]}"
            if os.path.isfile(os.path.join(m["fp16"], "splade_onnx.json")):
                try:
                    h = expander(m["fp16"], "cuda", device)
                    out[f"{name} fp16 cuda vs fp32 cpu, batch 32"] = compare(
                        ref[32], dense(h.expand(ptexts, batch_size=32))
                    )
                    del h
                except Exception as e:  # noqa: BLE001
                    out[f"{name} fp16 cuda"] = f"{type(e).__name__}: {str(e)[:500]}"
            else:
                out[f"{name} fp16"] = "no fp16 artifact (export failed)"
            del cpu
            log(
                f"parity {name}: "
                + ", ".join(
                    f"{k}: {v['max_abs_diff']:.2e}"
                    for k, v in out.items()
                    if isinstance(v, dict) and k.startswith(name)
                )
            )

    if want("parity"):
        R.section("parity", parity, need=20)

    def placement():
        out = res.setdefault("placement", {})
        for name in [n for n in ("tiny", "base") if n in models]:
            for prec in ("fp32", "fp16"):
                p = models[name][prec]
                if os.path.isfile(os.path.join(p, "splade_onnx.json")):
                    try:
                        out[f"{name}-{prec}"] = node_placement(p, device, a.work)
                    except Exception as e:  # noqa: BLE001
                        out[f"{name}-{prec}"] = f"{type(e).__name__}: {str(e)[:500]}"

    if want("placement"):
        R.section("placement", placement, need=15)

    # ---------------------------------------------------------------- throughput (interleaved per shape)
    def throughput():
        import torch

        out = res.setdefault("throughput", {})
        gemm16 = (res.get("gemm") or {}).get("fp16_tflops")
        for name in [n for n in ("base", "tiny") if n in models]:
            m = models[name]
            cfg = dict(shape if name == "base" else _tiny_cfg(a.tiny), vocab=VOCAB)
            sessions = {}
            for prec, kind in (("fp32", "cuda"), ("fp32", "cuda-notf32"), ("fp16", "cuda")):
                if os.path.isfile(os.path.join(m[prec], "splade_onnx.json")):
                    try:
                        sessions[(prec, kind)] = ort_session(m[prec], kind, device)
                    except Exception as e:  # noqa: BLE001
                        res["errors"][f"session {name} {prec} {kind}"] = f"{type(e).__name__}: {e}"
            model = load_torch(m["ckpt"], device)
            for b, s in shapes:
                if R.left() < 45:
                    out[f"{name} {b}x{s}"] = "skipped: budget"
                    continue
                ids = token_batch(streams[name], b, s)
                flops = bert_flops(cfg, s) * b
                row: Dict[str, Any] = {"gflop_per_batch": round(flops / 1e9, 1)}
                for (prec, kind), sess in sessions.items():
                    feeds = feeds_for(sess.input_names, ids)
                    for iob in (True, False):
                        if kind == "cuda-notf32" and not iob:
                            continue
                        label = f"ort {prec}{' no-tf32' if kind == 'cuda-notf32' else ''} iob {'on' if iob else 'off'}"
                        try:
                            sess.io_binding = iob
                            t, _ = time_calls(partial(sess.run, feeds))
                            row[label] = {
                                "docs_s": round(b / t, 1),
                                "ms": round(t * 1e3, 2),
                                "tflops": round(flops / t / 1e12, 1),
                            }
                            if gemm16:
                                row[label]["fraction_of_fp16_gemm"] = round(flops / t / 1e12 / gemm16, 3)
                        except Exception as e:  # noqa: BLE001
                            row[label] = f"{type(e).__name__}: {str(e)[:300]}"
                    sess.io_binding = device == "cuda"
                if model is not None:
                    for prec in ("fp32", "fp16"):
                        label = f"torch {prec}{' autocast' if prec == 'fp16' else ''}"
                        try:
                            t, _ = time_calls(partial(torch_splade, model, ids, prec == "fp16", device))
                            row[label] = {
                                "docs_s": round(b / t, 1),
                                "ms": round(t * 1e3, 2),
                                "tflops": round(flops / t / 1e12, 1),
                            }
                        except Exception as e:  # noqa: BLE001
                            row[label] = f"{type(e).__name__}: {str(e)[:300]}"
                            torch.cuda.empty_cache() if device == "cuda" else None
                out[f"{name} {b}x{s}"] = row
                log(
                    f"throughput {name} {b}x{s}: "
                    + ", ".join(f"{k} {v['docs_s']}" for k, v in row.items() if isinstance(v, dict))
                )
                R.save()
            del sessions, model
            if device == "cuda":
                torch.cuda.empty_cache()

    if want("throughput"):
        R.section("throughput", throughput, need=60)

    # ---------------------------------------------------------------- memory + first vector, fresh processes
    def memory():
        out = res.setdefault("fresh_process", {})
        plan = [
            ("base", "ort", "fp16"),
            ("base", "torch", "fp16"),
            ("base", "ort", "fp32"),
            ("base", "torch", "fp32"),
            ("tiny", "ort", "fp32"),
            ("tiny", "ort", "fp16"),
            ("tiny", "torch", "fp32"),
            ("tiny", "torch", "fp16"),
        ]
        for name, impl, prec in plan[:3] if a.smoke else plan:
            key = f"{name} {impl} {prec}"
            if name not in models:
                continue
            if R.left() < 25:
                out[key] = "skipped: budget"
                continue
            m = models[name]
            path = m[prec] if impl == "ort" else m["ckpt"]
            if impl == "ort" and not os.path.isfile(os.path.join(path, "splade_onnx.json")):
                out[key] = "no artifact"
                continue
            try:
                out[key] = run_fresh(
                    impl, path, prec, m["ckpt"], a.texts, device, mem_batch, mem_seqs, timeout=min(120, R.left() - 5)
                )
                log(f"fresh {key}: {out[key].get('latency_s')} {out[key].get('memory')}")
            except Exception as e:  # noqa: BLE001
                out[key] = f"{type(e).__name__}: {str(e)[-1500:]}"
                log(f"fresh {key} FAILED: {out[key][:300]}")
            R.save()

    if want("memory"):
        if device == "cuda":
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()
        R.section("memory", memory, need=30)

    # ---------------------------------------------------------------- end to end Expander
    def e2e():
        out = res.setdefault("e2e", {})
        n = 64 if a.smoke else 1024
        texts = (docs * 2)[:n]
        for name, prec in (("tiny", "fp32"), ("base", "fp16"), ("base", "fp32")):
            if name not in models:
                continue
            p = models[name][prec]
            if not os.path.isfile(os.path.join(p, "splade_onnx.json")) or R.left() < 20:
                out[f"{name} {prec}"] = "skipped"
                continue
            for budget_mb in (None, 128, 4096):
                key = f"{name} {prec} batch 128, 256 tokens, logits budget {budget_mb or 'default'} MB"
                try:
                    e = expander(p, "cuda", device, batch_size=128, logits_budget_mb=budget_mb)
                    t, _ = time_calls(partial(e.expand, texts, max_length=256), warmup=1, min_reps=2, max_reps=3)
                    out[key] = round(n / t, 1)
                    del e
                except Exception as ex:  # noqa: BLE001
                    out[key] = f"{type(ex).__name__}: {str(ex)[:300]}"
        log(f"e2e: {out}")

    if want("e2e"):
        R.section("e2e", e2e, need=20)

    res["env_after"] = nvidia_smi()
    res["summary"] = summarize(res)
    R.save()
    print_table(res)


def _tiny_cfg(tiny: str) -> Dict[str, int]:
    with open(os.path.join(tiny, "config.json"), encoding="utf-8") as f:
        c = json.load(f)
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    return {k: int(c[k]) for k in keys}


def summarize(res: Dict[str, Any]) -> Dict[str, Any]:
    """The issue's goals, read off the results (None where a figure is missing)."""
    s: Dict[str, Any] = {}
    par = res.get("parity") or {}
    fp32 = {k: v for k, v in par.items() if isinstance(v, dict) and " fp32 cuda batch" in k}
    if fp32:
        s["fp32_parity_max_abs_diff"] = max(v["max_abs_diff"] for v in fp32.values())
        s["fp32_parity_same_support"] = all(v["support_equal"] for v in fp32.values())
        s["fp32_parity_within_1e-4"] = s["fp32_parity_max_abs_diff"] <= 1e-4
    notf = {k: v for k, v in par.items() if isinstance(v, dict) and "cuda-notf32 batch" in k}
    if notf:
        s["fp32_no_tf32_parity_max_abs_diff"] = max(v["max_abs_diff"] for v in notf.values())
        s["fp32_no_tf32_same_support"] = all(v["support_equal"] for v in notf.values())
    tp = res.get("throughput") or {}
    for b in (32, 128):
        row = tp.get(f"base {b}x256")
        if isinstance(row, dict):
            ours = row.get("ort fp16 iob on")
            torch16 = row.get("torch fp16 autocast")
            if isinstance(ours, dict) and isinstance(torch16, dict):
                s[f"base {b}x256 fp16 speedup vs torch fp16"] = round(ours["docs_s"] / torch16["docs_s"], 2)
            if isinstance(ours, dict):
                s[f"base {b}x256 fp16 fraction of fp16 GEMM bound"] = ours.get("fraction_of_fp16_gemm")
    fresh = res.get("fresh_process") or {}
    for prec in ("fp16", "fp32"):
        o, t = fresh.get(f"base ort {prec}"), fresh.get(f"base torch {prec}")
        if isinstance(o, dict) and isinstance(t, dict) and "memory" in o and "memory" in t:
            key = next((k for k in o["memory"] if k.endswith("x256")), None)
            if key and key in t["memory"]:
                mo, mt = o["memory"][key]["cumulative_peak_mib"], t["memory"][key]["cumulative_peak_mib"]
                s[f"base {key} {prec} peak GPU MiB ours/torch"] = [mo, mt, round(mo / max(mt, 1e-9), 3)]
    return s


def print_table(res: Dict[str, Any]) -> None:
    print("\n=== summary", json.dumps(res.get("summary"), indent=1))
    tp = res.get("throughput") or {}
    for shape, row in tp.items():
        if isinstance(row, dict):
            cells = [f"{k}={v['docs_s']}" for k, v in row.items() if isinstance(v, dict)]
            print(f"{shape}: " + "  ".join(cells))
    print("errors:", json.dumps({k: str(v)[:300] for k, v in res.get("errors", {}).items()}, indent=1))


if __name__ == "__main__":
    main()
