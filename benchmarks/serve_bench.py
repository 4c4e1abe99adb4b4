"""`splade-onnx serve` under load, against in-process `expand` and a naive server, interleaved in one run.

    nice -n 10 python benchmarks/serve_bench.py                    # full run (about 8 minutes)
    nice -n 10 python benchmarks/serve_bench.py --seconds 2 --soak 5 --levels 1 4   # quick look

Three contestants on the same machine, each level measured back to back (so machine load hits them alike):

* ``serve``: ``splade-onnx serve ARTIFACT`` (dynamic batching), in its own process;
* ``naive``: the server a user writes today: a Starlette endpoint (what FastAPI does for a ``def`` endpoint)
  calling ``expander.expand([text])`` per request in the threadpool, in its own process;
* ``in-process``: one batched ``expander.expand(texts)`` call over the same texts (throughput) and batch-1
  ``expand([text])`` calls (latency), in this process, no HTTP.

Clients are real HTTP clients (stdlib ``http.client``, a thread and a keep-alive connection each), one text per
request, on TEI's ``POST /embed_sparse``
(``prompt_name: "query"`` for queries), at 1, 4, 16 and 64 concurrent clients, for SciFact queries (64 tokens) and
SciFact documents (256 tokens). Then 64 clients for ``--soak`` seconds on ``serve``: errors, the server's RSS every
second, and every response compared with the in-process vector (same indices, values within 1e-6).

Writes ``benchmarks/results/serve.json``, ``serve.md`` and ``serve.png``. The Lambda handler's cold and warm
latency come from ``benchmarks/serve_lambda_bench.py`` (run here too, into the same JSON).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATASETS = os.environ.get("SPLADE_ONNX_DATASETS", os.path.join(os.path.dirname(REPO), "shared", "datasets"))
RESULTS = os.path.join(HERE, "results")

NAIVE_APP = r"""
import sys, warnings
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn
from splade_onnx import Expander

warnings.simplefilter("ignore")
e = Expander(sys.argv[1], threads=int(sys.argv[3]) if len(sys.argv) > 3 else None)
ML = e.manifest.max_length

async def embed(request):
    body = await request.json()
    ml = ML["query"] if body.get("prompt_name") == "query" else ML["document"]
    v = await run_in_threadpool(e.expand, [body["inputs"]], max_length=ml)
    return JSONResponse([[{"index": i, "value": w} for i, w in zip(v[0].indices.tolist(), v[0].values.tolist())]])

async def health(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/embed_sparse", embed, methods=["POST"]), Route("/health", health)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_texts(n_queries: int, n_docs: int):
    qs, ds = [], []
    with open(os.path.join(DATASETS, "scifact", "queries.jsonl"), encoding="utf-8") as f:
        for line in f:
            qs.append(json.loads(line)["text"])
            if len(qs) >= n_queries:
                break
    with open(os.path.join(DATASETS, "scifact", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            ds.append((d.get("title", "") + " " + d.get("text", "")).strip())
            if len(ds) >= n_docs:
                break
    return qs, ds


def start(cmd: List[str], port: int, log: str) -> subprocess.Popen:
    import httpx

    f = open(log, "wb")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 120:
        if p.poll() is not None:
            raise RuntimeError(f"{cmd} exited: {open(log).read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return p
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{cmd} not ready")


def pct(xs: List[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def load(
    url: str,
    texts: List[str],
    role: str,
    clients: int,
    seconds: float,
    check: Optional[Dict[str, Any]] = None,
    rss_pid: Optional[int] = None,
    cpu_pid: Optional[int] = None,
    more: Optional[List[Any]] = None,
) -> Dict[str, Any]:
    """``clients`` closed-loop HTTP clients (a thread each, a keep-alive ``http.client`` connection each), one text
    per request, for ``seconds``; ``more`` adds ``(texts, role, clients)`` groups running at the same time; optional
    check of every answer against ``check[text]``; the server's CPU time per text when ``cpu_pid`` is given."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    import numpy as np
    import orjson
    import psutil

    host = urlsplit(url)
    lat: List[float] = []
    errors: Dict[str, int] = {}
    counts = {"checked": 0, "mismatches": 0}
    rss: List[List[float]] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    groups = [(texts, role, clients)] + list(more or [])

    def client(c: int, texts: List[str], role: str, n: int) -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=300)
        headers = {"Content-Type": "application/json"}
        extra = {"prompt_name": "query"} if role == "query" else {}
        i = c
        while time.perf_counter() < stop_at:
            text = texts[i % len(texts)]
            i += n
            body = orjson.dumps({"inputs": text, **extra})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/embed_sparse", body, headers)
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=300)
                continue
            dt = time.perf_counter() - t0
            if r.status != 200:
                with lock:
                    errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                continue
            ok = True
            if check is not None:
                got = orjson.loads(data)[0]
                ref = check[text]
                idx = np.fromiter((e["index"] for e in got), dtype=np.int64, count=len(got))
                val = np.fromiter((e["value"] for e in got), dtype=np.float64, count=len(got))
                ok = bool(np.array_equal(idx, ref.indices) and np.abs(val - ref.values).max(initial=0) <= 1e-6)
            with lock:
                lat.append(dt)
                if check is not None:
                    counts["checked"] += 1
                    counts["mismatches"] += 0 if ok else 1
        conn.close()

    def sample_rss() -> None:
        p = psutil.Process(rss_pid)
        t0 = time.perf_counter()
        while time.perf_counter() < stop_at:
            rss.append([round(time.perf_counter() - t0, 1), round(p.memory_info().rss / 2**20, 1)])
            time.sleep(1.0)

    server = psutil.Process(cpu_pid) if cpu_pid else None
    cpu0 = sum(server.cpu_times()[:2]) if server else 0.0
    client_cpu0 = time.process_time()
    threads = [threading.Thread(target=client, args=(c, t, r, n)) for t, r, n in groups for c in range(n)]
    if rss_pid is not None:
        threads.append(threading.Thread(target=sample_rss))
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    out: Dict[str, Any] = {
        "clients": sum(n for _, _, n in groups),
        "requests": len(lat),
        "seconds": round(wall, 2),
        "throughput": round(len(lat) / wall, 2),
        "p50_ms": round(pct(lat, 0.5) * 1e3, 2),
        "p99_ms": round(pct(lat, 0.99) * 1e3, 2),
        "errors": errors,
        "client_cpu_ms_per_text": round((time.process_time() - client_cpu0) * 1e3 / max(1, len(lat)), 3),
    }
    if server is not None:
        out["server_cpu_ms_per_text"] = round((sum(server.cpu_times()[:2]) - cpu0) * 1e3 / max(1, len(lat)), 3)
    if check is not None:
        out.update(counts)
    if rss_pid is not None:
        out["rss_mb"] = rss
    return out


def batch_stats(url: str) -> Dict[str, float]:
    """Texts and merged calls so far (from /metrics), to report the mean batch size of a level."""
    import httpx

    texts = calls = 0.0
    for ln in httpx.get(url + "/metrics").text.splitlines():
        if ln.startswith("splade_onnx_batch_size_sum"):
            texts += float(ln.split()[-1])
        elif ln.startswith("splade_onnx_batch_size_count"):
            calls += float(ln.split()[-1])
    return {"texts": texts, "calls": calls}


def in_process(e: Any, texts: List[str], ml: int, seconds: float, clients: int = 1) -> Dict[str, float]:
    """One batched expand over ``texts`` (texts/s), expand calls of ``clients`` texts each over the same texts
    (texts/s: the most a batching server can reach with ``clients`` closed-loop one-text clients, whose calls can
    hold no more texts than that) and batch-1 expand calls for ``seconds`` (p50, p99)."""
    t0, c0 = time.perf_counter(), time.process_time()
    e.expand(texts, max_length=ml)
    batched = len(texts) / (time.perf_counter() - t0)
    cpu_batched = (time.process_time() - c0) * 1e3 / len(texts)
    t0 = time.perf_counter()
    for a in range(0, len(texts), clients):
        e.expand(texts[a : a + clients], max_length=ml)
    grouped = len(texts) / (time.perf_counter() - t0)
    lat = []
    stop = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop:
        t = texts[i % len(texts)]
        i += 1
        t1 = time.perf_counter()
        e.expand([t], max_length=ml)
        lat.append(time.perf_counter() - t1)
    return {
        "batched_throughput": round(batched, 2),
        "batched_cpu_ms_per_text": round(cpu_batched, 3),
        "grouped_throughput": round(grouped, 2),
        "b1_p50_ms": round(pct(lat, 0.5) * 1e3, 2),
        "b1_p99_ms": round(pct(lat, 0.99) * 1e3, 2),
        "b1_throughput": round(len(lat) / seconds, 2),
    }


def median_row(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The per-field median of the repetitions of one level (numbers; other fields from the first repetition)."""
    out: Dict[str, Any] = {}
    for k, v in rows[0].items():
        if isinstance(v, dict):
            out[k] = median_row([r[k] for r in rows])
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            med = statistics.median(r[k] for r in rows)
            out[k] = med if isinstance(v, int) and med == int(med) and k == "clients" else round(float(med), 3)
            if k == "clients":
                out[k] = int(med)
        else:
            out[k] = v
    out.pop("rep", None)
    return out


def plot(res: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, kind in enumerate(("queries", "documents")):
        rows = res["levels"][kind]
        cl = [r["clients"] for r in rows]
        ax = axes[0][col]
        ax.plot(cl, [r["serve"]["throughput"] for r in rows], "o-", label="splade-onnx serve")
        ax.plot(cl, [r["naive"]["throughput"] for r in rows], "s--", label="naive server (expand per request)")
        ax.plot(cl, [r["in_process"]["batched_throughput"] for r in rows], "k:", label="in-process batched expand")
        ax.set_xscale("log", base=2)
        ax.set_xticks(cl, [str(c) for c in cl])
        ax.set_title(f"{kind}: throughput")
        ax.set_ylabel("texts / s")
        ax.legend(fontsize=8)
        ax = axes[1][col]
        for name, style in (("serve", "o-"), ("naive", "s--")):
            ax.plot(cl, [r[name]["p50_ms"] for r in rows], style, label=f"{name} p50")
            ax.plot(cl, [r[name]["p99_ms"] for r in rows], style, alpha=0.4, label=f"{name} p99")
        ax.plot(cl, [r["in_process"]["b1_p50_ms"] for r in rows], "k:", label="in-process batch-1 p50")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(cl, [str(c) for c in cl])
        ax.set_title(f"{kind}: latency vs concurrent clients")
        ax.set_xlabel("concurrent clients (one text per request)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    fig.suptitle(f"splade-onnx serve, {res['model']}, {res['date']} ({res['cpu']}, {os.cpu_count()} cores, shared)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(res: Dict[str, Any]) -> str:
    lines = [
        f"# splade-onnx serve under load ({res['date']})",
        "",
        f"Command: `{res['command']}`  ",
        f"Model: {res['model']}; machine: {res['cpu']}, "
        f"{os.cpu_count()} cores shared with other work (load average at start {res['loadavg_start']:.1f}); "
        f"onnxruntime intra-op threads: {res.get('threads') or 'its default'} (all three contestants); "
        "client: stdlib http.client, a thread and a keep-alive connection per client, on the same machine; "
        "one text per request.",
        "",
        "| texts | clients | serve texts/s | naive texts/s | in-process batched texts/s | serve / in-process | "
        "in-process, calls of `clients` texts: texts/s (/ batched) | serve / that | serve / naive | "
        "best serve / naive any batcher could reach | serve p50 / p99 ms | naive p50 / p99 ms | "
        "in-process batch-1 p50 ms | mean batch | CPU ms/text: serve / naive / in-process batched |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x: float) -> str:
        return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"

    nan = float("nan")
    for kind in ("queries", "documents"):
        for r in res["levels"][kind]:
            s, n, ip = r["serve"], r["naive"], r["in_process"]
            cpu = [s["server_cpu_ms_per_text"], n["server_cpu_ms_per_text"], ip["batched_cpu_ms_per_text"]]
            lines.append(
                f"| {kind} | {r['clients']} | {f(s['throughput'])} | {f(n['throughput'])} | "
                f"{f(ip['batched_throughput'])} | {r['serve_vs_in_process']:.2f} | "
                f"{f(ip.get('grouped_throughput', nan))} ({r.get('grouped_vs_in_process', nan):.2f}) | "
                f"{r.get('serve_vs_grouped', nan):.2f} | {r['serve_vs_naive']:.2f} | "
                f"{r.get('ceiling_vs_naive', nan):.2f} | "
                f"{f(s['p50_ms'])} / {f(s['p99_ms'])} | {f(n['p50_ms'])} / {f(n['p99_ms'])} | {f(ip['b1_p50_ms'])} | "
                f"{r['mean_batch']:.1f} | {' / '.join(f(c) for c in cpu)} |"
            )
    soak = res.get("soak")
    if soak:
        rss = [m for _, m in soak["rss_mb"]]
        lines += [
            "",
            f"Soak: {soak['clients']} clients for {soak['seconds']} s (queries and documents): "
            f"{soak['requests']} answers, errors {soak['errors'] or 0}, {soak['checked']} checked against "
            f"in-process vectors, {soak['mismatches']} mismatches; server RSS {min(rss):.0f} -> "
            f"{max(rss):.0f} MB (first {rss[0]:.0f}, last {rss[-1]:.0f}).",
        ]
    lam = res.get("lambda")
    if lam:
        lines += [
            "",
            f"Lambda handler (`splade_onnx.serve.lambda_handler.handler`, fresh process each run, "
            f"{lam['runs']} runs): cold invocation (imports + model load + first request) median "
            f"{lam['cold_ms_median']} ms; warm invocation median {lam['warm_ms_median']} ms "
            f"(p99 {lam['warm_ms_p99']} ms); process start to first answer median "
            f"{lam['process_to_first_answer_ms_median']} ms.",
        ]
    lines += ["", f"TEI: {res['tei']}"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "artifacts", "splade-tiny"))
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--seconds", type=float, default=6.0, help="per level and contestant")
    ap.add_argument("--reps", type=int, default=2, help="repetitions of the level sweep (medians reported)")
    ap.add_argument("--soak", type=float, default=60.0, help="seconds of the 64-client soak (0: skip)")
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--docs", type=int, default=96)
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--no-lambda", action="store_true")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime intra-op threads, the same for all three contestants (default: its choice)",
    )
    ap.add_argument("--serve-args", default="", help="extra `splade-onnx serve` flags, e.g. '--max-wait-ms 5'")
    ap.add_argument("--kinds", nargs="+", default=["queries", "documents"], choices=["queries", "documents"])
    ap.add_argument("--render", action="store_true", help="only rewrite serve.md and serve.png from serve.json")
    args = ap.parse_args()
    if args.render:
        with open(os.path.join(args.out, "serve.json")) as fh:
            saved = json.load(fh)
        with open(os.path.join(args.out, "serve.md"), "w") as fh:
            fh.write(markdown(saved))
        plot(saved, os.path.join(args.out, "serve.png"))
        return 0
    warnings.simplefilter("ignore")
    sys.path.insert(0, os.path.join(REPO, "src"))
    from splade_onnx import Expander

    e = Expander(args.model, threads=args.threads)
    th = ["--threads", str(args.threads)] if args.threads else []
    ml = e.manifest.max_length
    qs, ds = load_texts(args.queries, args.docs)
    refs = dict(zip(qs, e.expand(qs, max_length=ml["query"]), strict=False))
    refs_d = dict(zip(ds, e.expand(ds, max_length=ml["document"]), strict=False))
    os.makedirs(args.out, exist_ok=True)
    logs = os.path.join(args.out, "tmp")
    os.makedirs(logs, exist_ok=True)
    p_serve, p_naive = free_port(), free_port()
    serve = start(
        [
            sys.executable,
            "-m",
            "splade_onnx",
            "serve",
            args.model,
            "--port",
            str(p_serve),
            *th,
            *args.serve_args.split(),
        ],
        p_serve,
        os.path.join(logs, "serve.log"),
    )
    naive = start(
        [sys.executable, "-c", NAIVE_APP, args.model, str(p_naive), *th[1:]], p_naive, os.path.join(logs, "naive.log")
    )
    u_serve, u_naive = f"http://127.0.0.1:{p_serve}", f"http://127.0.0.1:{p_naive}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    res: Dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "nice -n 10 python benchmarks/serve_bench.py " + " ".join(sys.argv[1:]),
        "model": e.manifest.source,
        "cpu": cpu,
        "loadavg_start": os.getloadavg()[0],
        "threads": args.threads,
        "levels": {"queries": [], "documents": []},
        "tei": "not run: text-embeddings-inference is a Rust server with no PyPI build (pip finds no "
        "distribution) and needs Docker or a Rust toolchain to build, neither present here",
    }
    try:
        # warm both servers (first runs allocate the arenas)
        for texts, role in ((qs, "query"), (ds, "document")):
            load(u_serve, texts, role, 4, 1.0)
            load(u_naive, texts, role, 4, 1.0)
        runs: Dict[Any, List[Dict[str, Any]]] = {}
        for rep in range(args.reps):
            for kind, texts, role in (("queries", qs, "query"), ("documents", ds, "document")):
                if kind not in args.kinds:
                    continue
                for clients in args.levels:
                    if rep % 2:  # alternate who goes first
                        n = load(u_naive, texts, role, clients, args.seconds, cpu_pid=naive.pid)
                    b0 = batch_stats(u_serve)
                    s = load(u_serve, texts, role, clients, args.seconds, cpu_pid=serve.pid)
                    b1 = batch_stats(u_serve)
                    if not rep % 2:
                        n = load(u_naive, texts, role, clients, args.seconds, cpu_pid=naive.pid)
                    ip = in_process(e, texts, ml[role], min(args.seconds, 4.0), clients)
                    row = {
                        "clients": clients,
                        "serve": s,
                        "naive": n,
                        "in_process": ip,
                        "serve_vs_in_process": s["throughput"] / ip["batched_throughput"],
                        "serve_vs_naive": s["throughput"] / max(n["throughput"], 1e-9),
                        # calls of `clients` texts are all a server can batch: its throughput against that bound,
                        # and the best serve/naive ratio any batching server could reach at this level
                        "serve_vs_grouped": s["throughput"] / ip["grouped_throughput"],
                        "ceiling_vs_naive": ip["grouped_throughput"] / max(n["throughput"], 1e-9),
                        "grouped_vs_in_process": ip["grouped_throughput"] / ip["batched_throughput"],
                        "serve_cpu_vs_in_process": s["server_cpu_ms_per_text"] / ip["batched_cpu_ms_per_text"],
                        "mean_batch": (b1["texts"] - b0["texts"]) / max(1.0, b1["calls"] - b0["calls"]),
                        "p50_minus_in_process_b1_ms": round(s["p50_ms"] - ip["b1_p50_ms"], 2),
                    }
                    row["rep"] = rep
                    runs.setdefault((kind, clients), []).append(row)
                    print(
                        f"rep {rep} {kind:9s} {clients:3d} clients: serve {s['throughput']:8.1f}/s "
                        f"p50 {s['p50_ms']:7.2f} "
                        f"p99 {s['p99_ms']:7.2f} | naive {n['throughput']:8.1f}/s p50 {n['p50_ms']:7.2f} | "
                        f"in-process batched {ip['batched_throughput']:8.1f}/s b1 p50 {ip['b1_p50_ms']:6.2f} | "
                        f"x{row['serve_vs_in_process']:.2f} of in-process (bound x{row['grouped_vs_in_process']:.2f}), "
                        f"x{row['serve_vs_naive']:.2f} of naive (bound x{row['ceiling_vs_naive']:.2f}), "
                        f"batch {row['mean_batch']:.1f}",
                        flush=True,
                    )
        res["runs"] = [row for rows in runs.values() for row in rows]
        for (kind, _clients), rows in runs.items():
            res["levels"][kind].append(median_row(rows))
        if args.soak > 0:
            both = {**refs, **refs_d}
            # 64 clients at once: 32 send queries, 32 send documents; every answer checked
            res["soak"] = load(
                u_serve,
                qs,
                "query",
                32,
                args.soak,
                check=both,
                rss_pid=serve.pid,
                cpu_pid=serve.pid,
                more=[(ds, "document", 32)],
            )
            res["soak"]["seconds"] = args.soak
            print(
                "soak:",
                {k: v for k, v in res["soak"].items() if k != "rss_mb"},
                "rss",
                res["soak"]["rss_mb"][0],
                "->",
                res["soak"]["rss_mb"][-1],
                flush=True,
            )
    finally:
        for p in (serve, naive):
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    if not args.no_lambda:
        out = subprocess.run(
            [sys.executable, os.path.join(HERE, "serve_lambda_bench.py"), "--model", args.model, "--json"],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0:
            res["lambda"] = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            print(out.stderr[-2000:], file=sys.stderr)
    with open(os.path.join(args.out, "serve.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, "serve.md"), "w") as f:
        f.write(markdown(res))
    plot(res, os.path.join(args.out, "serve.png"))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
