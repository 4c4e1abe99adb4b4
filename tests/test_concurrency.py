"""One Expander / one SparseIndex shared by threads gives exactly the serial results (issue 6)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from splade_onnx import Expander

THREADS = 8
CALLS = 200
WORDS = (
    "heart attack aspirin kidney stone protein folding gene expression cancer risk vitamin d "
    "immune response cell growth sleep memory"
).split()


def _texts(seed: int, n: int):
    # short, distinct, deterministic texts; the length varies so calls use different padded shapes
    return [" ".join(WORDS[(seed * 7 + i * 3 + j) % len(WORDS)] for j in range(1 + (seed + i) % 9)) for i in range(n)]


@pytest.fixture(scope="module")
def expander(tiny_artifact):
    return Expander(tiny_artifact, batch_size=4, threads=1)


def test_eight_threads_two_hundred_calls_equal_serial(expander):
    max_lengths = [16, 32, 64]  # several truncation lengths: the per-length tokenizer copies are made concurrently
    calls = [
        (t, c, _texts(t * CALLS + c, 1 + c % 3), max_lengths[(t + c) % 3]) for t in range(THREADS) for c in range(CALLS)
    ]
    uniq = {}
    for _, _, texts, ml in calls:
        for x in texts:
            uniq.setdefault((x, ml), None)
    serial = {}
    for x, ml in uniq:
        serial[(x, ml)] = expander.expand([x], max_length=ml)[0]
    base_tok = expander.tokenizer.to_str()
    barrier = threading.Barrier(THREADS)

    def worker(t):
        barrier.wait()
        out = []
        for tt, _c, texts, ml in calls:
            if tt == t:
                out.append((texts, ml, expander.expand(texts, max_length=ml)))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    n = 0
    for per_thread in results:
        assert len(per_thread) == CALLS
        for texts, ml, vecs in per_thread:
            assert len(vecs) == len(texts)
            for x, v in zip(texts, vecs):
                assert v == serial[(x, ml)], f"thread result differs from serial for {x!r} (max_length {ml})"
                n += 1
    assert n >= THREADS * CALLS
    # the shared tokenizer was never mutated (truncation/padding live on per-length copies)
    assert expander.tokenizer.to_str() == base_tok
    assert expander.tokenizer.truncation is None and expander.tokenizer.padding is None
    for ml in max_lengths:
        assert expander.tokenizer_for(ml).truncation["max_length"] == ml


def test_concurrent_first_use_of_a_length_makes_one_tokenizer_copy(tiny_artifact):
    e = Expander(tiny_artifact, threads=1)
    barrier = threading.Barrier(THREADS)
    seen = []

    def worker(_):
        barrier.wait()
        seen.append(id(e.tokenizer_for(40)))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    assert len(set(seen)) == 1


# ------------------------------------------------------------------ the index
@pytest.fixture(scope="module")
def index_and_queries(expander):
    from splade_onnx import SparseIndex

    docs = _texts(1, 300)
    idx = SparseIndex.from_vectors(
        expander.expand(docs, max_length=32), ids=[f"d{i}" for i in range(len(docs))], vocab_size=expander.vocab_size
    )
    queries = expander.expand(_texts(99, 40), max_length=16)
    return idx, queries


def test_concurrent_search_equals_serial(index_and_queries):
    idx, queries = index_and_queries
    serial = [idx.search(q, k=10) for q in queries]
    serial_batch = idx.search(list(queries), k=10)
    barrier = threading.Barrier(THREADS)

    def worker(t):
        barrier.wait()
        out = []
        for c in range(60):
            i = (t * 13 + c) % len(queries)
            out.append((i, idx.search(queries[i], k=10)))
            if c % 20 == 0:
                out.append((-1, idx.search(list(queries), k=10)))
        return out

    with ThreadPoolExecutor(THREADS) as pool:
        for per_thread in pool.map(worker, range(THREADS)):
            for i, hits in per_thread:
                assert hits == (serial_batch if i < 0 else serial[i])


def test_readers_during_saves(index_and_queries, tmp_path):
    from splade_onnx import SparseIndex

    idx, queries = index_and_queries
    path = tmp_path / "idx"
    idx.save(path)
    want = [idx.search(q, k=5) for q in queries[:10]]
    stop = threading.Event()
    errors = []

    def saver():
        try:
            for _ in range(15):
                idx.save(path)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            stop.set()

    def reader(kind):
        loads = 0
        try:
            while not stop.is_set() or loads == 0:
                if kind == "disk":
                    got = SparseIndex.load(path)
                    loads += 1
                else:
                    got = idx  # searching the very object being saved
                    loads += 1
                for q, w in zip(queries[:10], want):
                    assert got.search(q, k=5) == w
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        return loads

    threads = [threading.Thread(target=saver)]
    with ThreadPoolExecutor(4) as pool:
        futs = [pool.submit(reader, k) for k in ("disk", "disk", "memory", "memory")]
        threads[0].start()
        threads[0].join()
        counts = [f.result() for f in futs]
    assert not errors, errors[:3]
    assert all(c > 0 for c in counts)
    assert [SparseIndex.load(path).search(q, k=5) for q in queries[:10]] == want
