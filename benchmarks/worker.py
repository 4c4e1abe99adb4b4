"""One contestant, one fresh process: cold start, peak RSS of one 32 x 256 batch, docs/s, batch-1 query latency.

Run by ``benchmarks/run.py`` (never imported by it, so each contestant's imports and memory are its own):

    python benchmarks/worker.py SPEC_JSON

SPEC_JSON names the contestant, its model folder, the docs/queries file, thread count and where to write vectors.
The first thing measured is the time from the parent's spawn (``spec["t_spawn"]``, wall clock) to the first vector of a
query, imports included. Prints one JSON line.
"""

from __future__ import annotations

import time

T_START = time.time()

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402


def _rss_peak_mb() -> float:
    # VmHWM is this address space's peak; ru_maxrss would report the parent's peak too (Linux keeps it across exec).
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _pool_numpy(logits, mask):
    import numpy as np

    # the model cards' pooling, vectorised: log(1 + relu(logits)) * mask, max over tokens
    return (np.log1p(np.maximum(logits, 0)) * mask[:, :, None]).max(axis=1)


class Ours:
    def __init__(self, spec):
        from splade_onnx import Expander

        self.e = Expander(spec["model"], threads=spec["threads"])
        self.vocab = self.e.vocab_size

    def docs(self, texts):
        return self.e.encode_documents(texts, max_length=256, batch_size=32)

    def query(self, text):
        return self.e.encode_queries([text], max_length=64)

    def dense(self, vecs):
        import numpy as np

        out = np.zeros((len(vecs), self.vocab), np.float32)
        for i, v in enumerate(vecs):
            out[i, v.indices] = v.values
        return out


class TorchEager:
    """The model cards' code: AutoModelForMaskedLM, log(1 + relu(logits)) * mask, max over tokens."""

    def __init__(self, spec):
        import torch
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        torch.set_num_threads(spec["threads"])
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(spec["model"])
        self.model = AutoModelForMaskedLM.from_pretrained(spec["model"]).eval()

    def _run(self, texts, max_length):
        torch = self.torch
        with torch.inference_mode():
            enc = self.tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            logits = self.model(**enc).logits
            w = torch.max(torch.log(1 + torch.relu(logits)) * enc["attention_mask"].unsqueeze(-1), dim=1).values
        return w.numpy()

    def docs(self, texts):
        return [self._run(texts[i : i + 32], 256) for i in range(0, len(texts), 32)]

    def query(self, text):
        return self._run([text], 64)

    def dense(self, out):
        import numpy as np

        return np.concatenate(out, axis=0)


class SentenceTransformers:
    def __init__(self, spec):
        import torch
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

        torch.set_num_threads(spec["threads"])
        self.m = SparseEncoder(
            modules=[MLMTransformer(spec["model"], max_seq_length=256), SpladePooling(pooling_strategy="max")],
            device="cpu",
        )

    def docs(self, texts):
        return self.m.encode(texts, batch_size=32, convert_to_tensor=True)

    def query(self, text):
        self.m.max_seq_length = 64
        try:
            return self.m.encode([text], batch_size=1, convert_to_tensor=True)
        finally:
            self.m.max_seq_length = 256

    def dense(self, out):
        return out.to_dense().numpy()


class SpladeRunner:
    def __init__(self, spec):
        from spladerunner.Expander import Expander

        self.e = Expander("Splade_PP_en_v1", max_length=256, cache_dir=spec["model"])
        self.vocab = spec["vocab"]

    def docs(self, texts):
        out = []
        for i in range(0, len(texts), 32):
            out.extend(self.e.expand(texts[i : i + 32]))
        return out

    def query(self, text):
        return self.e.expand([text])

    def dense(self, out):
        import numpy as np

        d = np.zeros((len(out), self.vocab), np.float32)
        for i, r in enumerate(out):
            d[i, r["indices"]] = r["values"]
        return d


class FastEmbed:
    def __init__(self, spec):
        from fastembed import SparseTextEmbedding

        self.m = SparseTextEmbedding(
            "prithivida/Splade_PP_en_v1",
            specific_model_path=spec["model"],
            threads=spec["threads"],
            cache_dir=spec["model"],
            local_files_only=True,
        )
        self.vocab = spec["vocab"]

    def docs(self, texts):
        return list(self.m.embed(texts, batch_size=32))

    def query(self, text):
        return list(self.m.embed([text], batch_size=1))

    def dense(self, out):
        import numpy as np

        d = np.zeros((len(out), self.vocab), np.float32)
        for i, r in enumerate(out):
            d[i, r.indices] = r.values
        return d


class OnnxLogits:
    """An MLM logits ONNX with onnxruntime, then the model cards' pooling in numpy."""

    def __init__(self, spec):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        so = ort.SessionOptions()
        so.intra_op_num_threads = spec["threads"]
        self.np = np
        self.s = ort.InferenceSession(os.path.join(spec["model"], "model.onnx"), so, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.s.get_inputs()]
        self.tok = Tokenizer.from_file(os.path.join(spec["model"], "tokenizer.json"))
        self.tok.enable_padding()

    def _run(self, texts, max_length):
        np = self.np
        self.tok.enable_truncation(max_length=max_length)
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = self.s.run(None, {k: feeds[k] for k in self.names})[0]
        return _pool_numpy(logits, mask)

    def docs(self, texts):
        return [self._run(texts[i : i + 32], 256) for i in range(0, len(texts), 32)]

    def query(self, text):
        return self._run([text], 64)

    def dense(self, out):
        return self.np.concatenate(out, axis=0)


CONTESTANTS = {
    "ours": Ours,
    "torch": TorchEager,
    "sentence-transformers": SentenceTransformers,
    "spladerunner": SpladeRunner,
    "fastembed": FastEmbed,
    "onnx-logits-numpy": OnnxLogits,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    import warnings

    warnings.simplefilter("ignore")
    with open(spec["data"], encoding="utf-8") as f:
        data = json.load(f)
    docs, queries = data["docs"], data["queries"]
    res = {"name": spec["name"]}
    c = CONTESTANTS[spec["impl"]](spec)
    c.query(queries[0])
    res["cold_start_s"] = time.time() - spec.get("t_spawn", T_START)
    res["rss_after_load_mb"] = _rss_peak_mb()
    first = c.docs(docs[:32])  # one 32 x 256 batch (the docs are all >= 256 tokens)
    res["peak_rss_32x256_mb"] = _rss_peak_mb()
    if spec.get("vectors"):
        import numpy as np

        np.save(spec["vectors"], c.dense(first)[: spec.get("n_vectors", 8)])
    t = time.perf_counter()
    c.docs(docs)
    res["docs_per_s"] = len(docs) / (time.perf_counter() - t)
    lat = []
    for q in queries[: spec.get("n_queries", 50)]:
        t = time.perf_counter()
        c.query(q)
        lat.append((time.perf_counter() - t) * 1000.0)
    lat.sort()
    res["query_p50_ms"] = lat[len(lat) // 2]
    res["peak_rss_mb"] = _rss_peak_mb()
    print("RESULT " + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
