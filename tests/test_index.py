"""SparseIndex: exactness vs scipy brute force, add/remove, save/load (mmap), corruption, interrupted saves, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splade_onnx import SparseIndex, SparseVector
from splade_onnx.errors import IndexFileError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "src" / "splade_onnx" / "data" / "sample_corpus.jsonl"


def brute_force(docs: dict, q: SparseVector, k: int, V: int):
    """Reference: scipy CSR product (float64) over the live documents in insertion order; ties by insertion order."""
    ids = list(docs)
    if not ids:
        return []
    rows = [docs[i] for i in ids]
    indptr = np.concatenate([[0], np.cumsum([len(r[0]) for r in rows])])
    D = sp.csr_matrix(
        (np.concatenate([r[1] for r in rows]).astype(np.float64), np.concatenate([r[0] for r in rows]), indptr),
        shape=(len(ids), V),
    )
    s = np.asarray(D @ q.to_dense(V).astype(np.float64)).ravel()
    order = [j for j in np.lexsort((np.arange(len(ids)), -s)) if s[j] > 0][:k]
    return [(ids[j], float(s[j])) for j in order]


def assert_same(hits, ref, tol=1e-5):
    assert [h[0] for h in hits] == [r[0] for r in ref], (hits[:5], ref[:5])
    assert np.allclose([h[1] for h in hits], [r[1] for r in ref], atol=tol, rtol=0)


def random_docs(rng, n, V, density=0.05):
    out = []
    for _ in range(n):
        m = int(rng.integers(0, max(2, int(V * density * 2))))
        idx = np.sort(rng.choice(V, size=m, replace=False)).astype(np.int32)
        out.append((idx, rng.gamma(1.5, 0.6, size=m).astype(np.float32)))
    return out


def stored(dtype, values, scale=None):
    """The weights the index stores, de-quantized: the reference searches those."""
    if dtype == "float16":
        return values.astype(np.float16).astype(np.float32)
    if dtype == "uint8":
        q = np.clip(np.rint(values / scale), 1, 255)
        q[values == 0] = 0
        return (q * scale).astype(np.float32)
    return values


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_random_equals_scipy_brute_force(dtype):
    rng = np.random.default_rng(7)
    V, n = 300, 800
    docs = random_docs(rng, n, V)
    ids = [f"doc-{i}" for i in range(n)]
    docs[5] = docs[3]  # an exact tie: insertion order decides
    idx = SparseIndex.from_vectors([SparseVector(*d) for d in docs], ids, vocab_size=V, dtype=dtype)
    ref_docs = {i: (d[0], stored(dtype, d[1], idx.scale)) for i, d in zip(ids, docs, strict=False)}
    queries = [SparseVector(*d) for d in random_docs(rng, 25, V)] + [SparseVector(docs[3][0], docs[3][1])]
    batch = idx.search(queries, k=20)
    assert len(batch) == len(queries)
    for q, hits in zip(queries, batch, strict=False):
        ref = brute_force(ref_docs, q, 20, V)
        assert_same(hits, ref)
        assert idx.search(q, k=20) == hits  # single-query path == batch path
    full = [h[0] for h in idx.search(queries[-1], k=n)]
    i = full.index("doc-3")
    assert full[i + 1] == "doc-5"  # identical vectors tie exactly: insertion order decides


def test_real_splade_vectors(tiny_artifact, scifact_texts):
    from splade_onnx import Expander

    e = Expander(tiny_artifact)
    dvecs = e.encode_documents(scifact_texts[:200], max_length=128)
    qvecs = e.encode_queries(["stem cells and cancer", "vitamin D deficiency in children", "protein folding"])
    idx = SparseIndex.from_vectors(dvecs, [f"d{i}" for i in range(len(dvecs))], vocab_size=e.vocab_size, vocab=e.vocab)
    ref_docs = {f"d{i}": (v.indices, v.values) for i, v in enumerate(dvecs)}
    for q, hits in zip(qvecs, idx.search(qvecs, k=10), strict=False):
        assert_same(hits, brute_force(ref_docs, q, 10, e.vocab_size))
        # explain: shared tokens, products sum to the score, biggest first, token strings from the vocab
        ex = idx.explain(q, hits[0][0], top_k=None)
        assert abs(sum(c.product for c in ex) - hits[0][1]) < 1e-4
        assert [c.product for c in ex] == sorted((c.product for c in ex), reverse=True)
        assert all(c.token == e.vocab[c.token_id] and abs(c.query_weight * c.doc_weight - c.product) < 1e-6 for c in ex)
        assert len(idx.explain(q, hits[0][0], top_k=3)) == min(3, len(ex))


# ------------------------------------------------------------------------------------- property test: add/remove/save
ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 12)),
        st.tuples(st.just("remove"), st.integers(0, 10_000)),
        st.tuples(st.just("save"), st.booleans()),
        st.tuples(st.just("compact"), st.just(0)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, seed=st.integers(0, 2**16), dtype=st.sampled_from(["float32", "float16"]), k=st.integers(1, 15))
def test_property_add_remove_save_load(ops, seed, dtype, k):
    rng = np.random.default_rng(seed)
    V = 60
    idx = SparseIndex(V, dtype=dtype)
    model: dict = {}
    next_id = 0
    queries = [SparseVector(*d) for d in random_docs(rng, 4, V, 0.1)]
    with tempfile.TemporaryDirectory() as tmp:
        for op, arg in ops:
            if op == "add":
                docs = random_docs(rng, arg, V, 0.1)
                ids = [f"x{next_id + j}" if (next_id + j) % 2 else next_id + j for j in range(arg)]
                next_id += arg
                idx.add([SparseVector(*d) for d in docs], ids)
                model.update({i: (d[0], stored(dtype, d[1])) for i, d in zip(ids, docs, strict=False)})
            elif op == "remove" and model:
                victim = list(model)[arg % len(model)]
                assert idx.remove(victim) == 1
                del model[victim]
                with pytest.raises(KeyError):
                    idx.remove(victim)
            elif op == "save":
                idx.save(tmp)
                idx = SparseIndex.load(tmp, mmap=arg, verify=True)
            elif op == "compact":
                idx.compact()
            assert len(idx) == len(model)
            assert idx.ids == list(model)
            for q in queries:
                assert_same(idx.search(q, k=k), brute_force(model, q, k, V))


# ------------------------------------------------------------------------------------- persistence and corruption
def _small_index(dtype="float32", n=200):
    rng = np.random.default_rng(3)
    docs = random_docs(rng, n, 100)
    return SparseIndex.from_vectors(
        [SparseVector(*d) for d in docs], [f"d{i}" for i in range(n)], vocab_size=100, dtype=dtype
    ), [SparseVector(*d) for d in random_docs(rng, 5, 100)]


def _data_dir(path):
    return Path(path) / json.loads((Path(path) / "index.json").read_text())["data"]


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_save_load_roundtrip_is_plain_npy_and_json(tmp_path, dtype):
    idx, qs = _small_index(dtype)
    idx.save(tmp_path / "ix")
    header = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert header["format_version"] == 1 and header["vocab_size"] == 100 and header["n_docs"] == 200
    assert all(len(m["sha256"]) == 64 for m in header["files"].values())
    for f in _data_dir(tmp_path / "ix").glob("*.npy"):
        np.load(f, allow_pickle=False)  # never needs pickle
    for mmap in (True, False):
        loaded = SparseIndex.load(tmp_path / "ix", mmap=mmap, verify=True)
        assert loaded.search(qs, k=10) == idx.search(qs, k=10)
        assert loaded.ids == idx.ids and loaded.dtype == dtype
        if mmap:
            assert isinstance(loaded._segments[0].docs, np.memmap)


def test_truncated_and_corrupted_files_are_refused(tmp_path):
    idx, qs = _small_index()
    path = tmp_path / "ix"
    idx.save(path)
    data = _data_dir(path)
    pristine = {f.name: f.read_bytes() for f in data.iterdir()}

    def restore():
        for name, b in pristine.items():
            (data / name).write_bytes(b)

    for name in ("post_docs.npy", "post_weights.npy", "term_indptr.npy", "ids.json"):
        (data / name).write_bytes(pristine[name][: len(pristine[name]) // 2])  # truncated
        for mmap in (True, False):
            with pytest.raises(IndexFileError, match=name):
                SparseIndex.load(path, mmap=mmap)
        restore()
    # same size, flipped bytes: caught by the full checksum (verify=True)
    b = bytearray(pristine["post_weights.npy"])
    b[-7] ^= 0xFF
    (data / "post_weights.npy").write_bytes(bytes(b))
    with pytest.raises(IndexFileError, match="post_weights.npy.*sha256"):
        SparseIndex.load(path, verify=True)
    restore()
    # a corrupted .npy header (same size) is refused even without verify
    b = bytearray(pristine["post_docs.npy"])
    b[:6] = b"XXXXXX"
    (data / "post_docs.npy").write_bytes(bytes(b))
    with pytest.raises(IndexFileError, match="post_docs.npy"):
        SparseIndex.load(path)
    restore()
    # same size, valid .npy, but document ordinals out of range (negative, past the end): refused at search time
    # without verify, never wrapped around into another document's score
    ptr = np.load(data / "term_indptr.npy")
    q, term = next((q, int(t)) for q in qs for t in q.indices if ptr[t + 1] > ptr[t])
    for pos, bad in ((ptr[term], -3), (ptr[term + 1] - 1, 10**6)):
        docs = np.load(data / "post_docs.npy")
        docs[pos] = bad
        np.save(data / "post_docs.npy", docs)
        loaded = SparseIndex.load(path, mmap=False)
        with pytest.raises(IndexFileError, match="out of range"):
            loaded.search(q, k=3)
        restore()
    (path / "index.json").write_text("{not json")
    with pytest.raises(IndexFileError, match="index.json"):
        SparseIndex.load(path)
    with pytest.raises(IndexFileError, match="index.json"):
        SparseIndex.load(tmp_path / "nowhere")


_SAVE_CHILD = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np
    from splade_onnx import SparseIndex, SparseVector
    path, mode = sys.argv[1], sys.argv[2]
    idx = SparseIndex.load(path, mmap=False)
    rng = np.random.default_rng(1)
    n = 20000 if mode == "fsize" else 3000
    vecs = [SparseVector(np.sort(rng.choice(100, 30, replace=False)), rng.random(30) + 0.1) for _ in range(n)]
    if mode == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # writes past 200 kB fail (EFBIG)
        idx.add(vecs)
        idx.save(path)
    else:
        for i in range(1000):
            idx.add(vecs[i * 3: i * 3 + 3])
            idx.save(path)
            print(len(idx), flush=True)
""")


def test_interrupted_save_keeps_the_old_index(tmp_path):
    idx, qs = _small_index()
    path = tmp_path / "ix"
    idx.save(path)
    expected = idx.search(qs, k=10)
    # 1) a real file-system failure midway (file size limit): the save raises, the old index is intact
    r = subprocess.run([sys.executable, "-c", _SAVE_CHILD, str(path), "fsize"], capture_output=True, text=True)
    assert r.returncode != 0 and "OSError" in r.stderr and "index.py" in r.stderr, r.stderr[-2000:]
    old = SparseIndex.load(path, verify=True)
    assert len(old) == 200 and old.search(qs, k=10) == expected
    # 2) SIGKILL at an arbitrary moment of repeated saves: what loads is always one complete version
    p = subprocess.Popen([sys.executable, "-c", _SAVE_CHILD, str(path), "kill"], stdout=subprocess.PIPE, text=True)
    versions = [int(p.stdout.readline())]
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    loaded = SparseIndex.load(path, verify=True)
    assert len(loaded) >= versions[0] and (len(loaded) - 200) % 3 == 0
    assert loaded.search(qs, k=10) is not None
    # the next save cleans up the debris of the killed one
    loaded = SparseIndex.load(path, mmap=False)
    loaded.save(path)
    assert [f.name for f in path.iterdir() if f.name != "index.json"] == [
        json.loads((path / "index.json").read_text())["data"]
    ]


def test_remove_and_validation_errors():
    idx, _ = _small_index()
    qs = [SparseVector(np.arange(0, 100, 3), np.ones(34))]
    top = idx.search(qs[0], k=3)
    assert len(top) == 3
    idx.remove(top[0][0])
    assert top[0][0] not in [d for d, _ in idx.search(qs[0], k=200)]
    assert len(idx) == 199
    with pytest.raises(KeyError):
        idx.explain(qs[0], top[0][0])
    with pytest.raises(ValueError, match="duplicate"):
        idx.add([SparseVector(np.array([1]), np.array([1.0]))], ["d1"])
    with pytest.raises(ValueError, match="term ids"):
        idx.add([SparseVector(np.array([100]), np.array([1.0]))], ["new"])
    with pytest.raises(ValueError):
        idx.search(qs[0], k=0)


# ------------------------------------------------------------------------------------- CLI and benchmark smoke
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "splade_onnx", *args], capture_output=True, text=True, cwd=str(REPO))


def test_cli_index_search_roundtrip(tiny_artifact, tmp_path):
    out = tmp_path / "sample-index"
    r = _cli("index", str(SAMPLE), "--model", tiny_artifact, "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["docs"] == 30
    # --model is optional: the header remembers the artifact
    r = _cli(
        "search",
        str(out),
        "how do vaccines protect against viruses?",
        "best way to make coffee",
        "-k",
        "3",
        "--explain",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    res = [json.loads(line) for line in r.stdout.splitlines()]
    assert res[0]["hits"][0]["id"] == "vaccines"
    assert res[1]["hits"][0]["id"] in ("coffee", "espresso")
    assert "coffee" in [t["token"] for t in res[1]["hits"][0]["tokens"]]
    r = _cli("search", str(out), "aspirin and stroke", "--explain")
    assert r.returncode == 0 and "[aspirin]" in r.stdout and "top contributing tokens" in r.stdout
    # plain text corpus: ids are line numbers
    txt = tmp_path / "c.txt"
    txt.write_text("the cat sat on the mat\n\nquantum computers use qubits\n")
    r = _cli("index", str(txt), "--model", tiny_artifact, "--out", str(tmp_path / "t"))
    assert r.returncode == 0, r.stderr
    r = _cli("search", str(tmp_path / "t"), "qubit", "--json", "-k", "1")
    assert json.loads(r.stdout)["hits"][0]["id"] == 3


def _search_bench_smoke(tiny_artifact: str, out: Path, *options: str) -> dict:
    """Run ``benchmarks/search_bench.py --smoke --no-peers`` with ``options``; its JSON results."""
    cmd = [sys.executable, str(REPO / "benchmarks" / "search_bench.py"), "--smoke", "--no-peers", *options]
    r = subprocess.run([*cmd, "--model", tiny_artifact, "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "search_smoke.json").read_text())


def test_benchmark_smoke(tiny_artifact, tmp_path):
    res = _search_bench_smoke(tiny_artifact, tmp_path)
    assert res["reference_vs_scipy_csr_float64"].startswith(f"{min(20, res['queries'])}/")
    exact = {c["name"]: c for c in res["contestants"] if c["exact"]}
    assert all(c["identical_top10"] == c["queries"] for c in exact.values()), exact
    assert res["mmap_same_results"]


@pytest.mark.slow
def test_benchmark_smoke_times_lucene_through_anserini(tiny_artifact, tmp_path):
    """The search benchmark's Lucene contestant: Anserini indexes the generated documents and a Java searcher
    (benchmarks/lucene/ImpactSearch.java) answers the queries one by one; its top 10 agree with the exact search
    up to the integer impacts (x100) Anserini indexes."""
    from splade_onnx.engines import anserini

    try:
        java = anserini.find_java()
    except anserini.AnseriniError as e:
        pytest.skip(f"Lucene via Anserini needs Java 21+: {e}")
    if not Path(java).resolve().with_name("javac").is_file():
        pytest.skip(f"the benchmark compiles its Lucene searcher: no javac next to {java} (a JRE, not a JDK)")
    res = _search_bench_smoke(tiny_artifact, tmp_path, "--lucene", "--accuracies", "")
    assert res["peers"]["lucene"]["indexed"] == res["docs"] == 3000
    (lucene,) = [c for c in res["contestants"] if c["name"].startswith("Lucene")]
    assert lucene["queries"] == res["queries"] == 20
    assert lucene["recall@10_vs_exact"] >= 0.95, lucene
    assert 0 < lucene["p50_ms"] < res["peers"]["round_trip_p50_ms"][lucene["name"]]
