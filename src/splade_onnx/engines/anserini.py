"""Lucene through Anserini: write SPLADE vectors as a ``JsonVectorCollection``, index it with Anserini's
``IndexCollection -impact -pretokenized``, search pre-encoded queries with ``SearchCollection -impact -pretokenized``,
and compare the top k with :class:`~splade_onnx.SparseIndex` on the same quantised weights.

Anserini indexes impacts as Lucene term frequencies, so weights are quantised to integers: ``round(w * scale)``
(default 100; entries that round to 0 are dropped), on documents and queries alike. A pre-encoded query is one line of
a ``TsvString`` topics file, ``qid<TAB>tokens``, each token repeated as many times as its integer weight (the format
of Anserini's own pre-encoded SPLADE topics). Lucene's score is then ``sum(q_t * d_t)`` over shared tokens: an integer,
exact in Lucene's float32 while below 2**24, which is what :func:`reference_index` computes in float64.

Needs Java 21+ (:func:`find_java`: ``SPLADE_ONNX_JAVA``, ``JAVA_HOME``, ``java`` on the ``PATH``, ``/usr/lib/jvm/*``)
and Anserini's fat jar (:func:`find_jar`: ``SPLADE_ONNX_ANSERINI_JAR``, else ``anserini-*-fatjar.jar`` in
``.cache/anserini/``; the ``pyserini`` source distribution on PyPI carries one, and ``scripts/setup.sh`` extracts
it). Nothing here needs Python packages beyond the runtime's.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from splade_onnx.errors import SpladeOnnxError
from splade_onnx.io.payloads import Vocab, anserini_record, feature_names, zip_records
from splade_onnx.vectors import SparseVector

PathLike = Union[str, "os.PathLike[str]"]
Hit = Tuple[str, float]
JAR_NAME = "anserini-1.7.1-fatjar.jar"
MIN_JAVA = 21

__all__ = [
    "AnseriniError",
    "find_java",
    "java_version",
    "find_jar",
    "write_collection",
    "write_topics",
    "index",
    "search",
    "read_run",
    "quantized_vector",
    "reference_index",
    "compare_top_k",
    "Agreement",
    "JAR_NAME",
]


class AnseriniError(SpladeOnnxError, RuntimeError):
    """Java or the Anserini jar is missing, or an Anserini command failed (the message has its last output lines)."""


# ------------------------------------------------------------------------------------------------ Java and the jar
def _major(java: str) -> Optional[int]:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def java_version(java: str) -> str:
    """The first line of ``java -version`` (e.g. ``openjdk version "25.0.3" 2026-04-21 LTS``)."""
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    lines = (out.stderr or out.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def find_java(min_version: int = MIN_JAVA) -> str:
    """A ``java`` of at least ``min_version``: ``$SPLADE_ONNX_JAVA`` (must qualify), else the newest of
    ``$JAVA_HOME/bin/java``, ``java`` on the ``PATH`` and ``/usr/lib/jvm/*/bin/java``. Raises :class:`AnseriniError`
    naming what was found when none qualifies."""
    forced = os.environ.get("SPLADE_ONNX_JAVA")
    if forced:
        v = _major(forced)
        if v is None or v < min_version:
            raise AnseriniError(
                f"SPLADE_ONNX_JAVA={forced} is {'not a java' if v is None else f'Java {v}'}; "
                f"Anserini needs Java {min_version}+"
            )
        return forced
    candidates: List[str] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(os.path.join(os.environ["JAVA_HOME"], "bin", "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(glob.glob("/usr/lib/jvm/*/bin/java"))
    found: Dict[str, Optional[int]] = {}
    for c in candidates:
        real = os.path.realpath(c)
        if real not in found and os.access(real, os.X_OK):
            found[real] = _major(real)
    ok = [(v, j) for j, v in found.items() if v is not None and v >= min_version]
    if not ok:
        seen = ", ".join(f"{j} (Java {v})" for j, v in found.items()) or "none"
        raise AnseriniError(
            f"no Java {min_version}+ found (Anserini needs it); found: {seen}. Install a JDK "
            f"{min_version}+ or set SPLADE_ONNX_JAVA to its bin/java"
        )
    return max(ok)[1]


def find_jar(path: Optional[PathLike] = None) -> str:
    """Anserini's fat jar: ``path``, ``$SPLADE_ONNX_ANSERINI_JAR``, or ``anserini-*-fatjar.jar`` in
    ``$SPLADE_ONNX_CACHE/anserini``, ``./.cache/anserini`` or the source checkout's ``.cache/anserini``."""
    given = path or os.environ.get("SPLADE_ONNX_ANSERINI_JAR")
    if given:
        if not os.path.isfile(given):
            raise AnseriniError(f"{given}: no such Anserini jar")
        return str(given)
    dirs = []
    if os.environ.get("SPLADE_ONNX_CACHE"):
        dirs.append(Path(os.environ["SPLADE_ONNX_CACHE"]) / "anserini")
    dirs += [Path.cwd() / ".cache" / "anserini", Path(__file__).resolve().parents[3] / ".cache" / "anserini"]
    for d in dirs:
        exact = d / JAR_NAME
        if exact.is_file():
            return str(exact)
        jars = sorted(d.glob("anserini-*-fatjar.jar"))
        if jars:
            return str(jars[-1])
    raise AnseriniError(
        f"Anserini jar not found in {', '.join(map(str, dirs))}: run scripts/setup.sh (it extracts "
        f"{JAR_NAME} from the pyserini 1.6.0 source distribution) or set SPLADE_ONNX_ANSERINI_JAR"
    )


def _run(
    java: Optional[str], jar: Optional[str], main: str, args: Sequence[str], heap: str, timeout: Optional[float]
) -> str:
    cmd = [java or find_java(), f"-Xmx{heap}", "-cp", jar or find_jar(), main, *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AnseriniError(f"{main} ran past {timeout} s: {' '.join(cmd)}") from e
    log = out.stdout + out.stderr
    if out.returncode != 0 or "Exception" in log and "Total run time" not in log and "indexed" not in log:
        lines = log.strip().splitlines()
        errors = [ln for ln in lines if "Exception" in ln or " ERROR " in ln][:5]
        shown = "\n".join(errors or lines[-15:])
        raise AnseriniError(f"{main} failed (exit {out.returncode}): {shown}\ncommand: {' '.join(cmd)}")
    return log


# ------------------------------------------------------------------------------------------------ writing
@dataclass
class Written:
    """What :func:`write_collection` / :func:`write_topics` wrote: ``path`` (a file, or the collection folder),
    ``count`` records, ``empty`` of them with no weight left after quantisation, ``files`` (collections)."""

    path: str
    count: int
    empty: int
    files: List[str] = field(default_factory=list)

    @property
    def directory(self) -> str:
        return self.path


def quantized_vector(vector: SparseVector, scale: float = 100.0) -> SparseVector:
    """The integer impacts Anserini indexes, ``round(w * scale)`` without the zeros, as a float32 vector."""
    q = np.rint(vector.values.astype(np.float64) * scale)
    keep = q > 0
    return SparseVector(vector.indices[keep], q[keep].astype(np.float32))


def write_collection(
    directory: PathLike,
    ids: Iterable[Any],
    vectors: Iterable[SparseVector],
    vocab: Vocab,
    *,
    texts: Optional[Iterable[Optional[str]]] = None,
    scale: float = 100.0,
    docs_per_file: int = 100_000,
    check_duplicates: bool = True,
) -> Written:
    """Write ``docs-00000.jsonl``, ... in ``directory`` (created): one ``JsonVectorCollection`` record per document,
    ``{"id", "contents", "vector": {token: int}}`` (``contents`` = the text or ""). Streams; Anserini indexes the
    files in parallel with ``-threads``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    files: List[str] = []
    count = empty = 0
    f = None
    try:
        for doc_id, vec, text in zip_records(ids, vectors, texts, check_duplicates=check_duplicates):
            if count % docs_per_file == 0:
                if f is not None:
                    f.close()
                files.append(str(d / f"docs-{len(files):05d}.jsonl"))
                f = open(files[-1], "w", encoding="utf-8")
            rec = anserini_record(str(doc_id), vec, vocab, contents=text or "", scale=scale)
            empty += not rec["vector"]
            f.write(json.dumps(rec, ensure_ascii=False))  # type: ignore[union-attr]
            f.write("\n")  # type: ignore[union-attr]
            count += 1
    finally:
        if f is not None:
            f.close()
    return Written(str(d), count, empty, files)


def write_topics(
    path: PathLike, ids: Iterable[Any], vectors: Iterable[SparseVector], vocab: Vocab, *, scale: float = 100.0
) -> Written:
    """Pre-encoded queries for ``-topicReader TsvString``: ``qid<TAB>token token ...``, each token repeated
    ``round(w * scale)`` times (heaviest first). A query with no weight left after quantisation is written with no
    tokens (Lucene returns nothing for it); ``empty`` counts them."""
    names = feature_names(vocab)
    count = empty = 0
    with open(path, "w", encoding="utf-8") as f:
        for qid, vec, _ in zip_records(ids, vectors):
            q = quantized_vector(vec, scale)
            order = np.lexsort((q.indices, -q.values))
            toks = []
            for i in order:
                tok = names[int(q.indices[i])]
                if not tok or any(c.isspace() for c in tok):
                    raise ValueError(
                        f"token {tok!r} (id {int(q.indices[i])}) is empty or holds whitespace: it "
                        "cannot be written as a pre-tokenized query"
                    )
                toks.extend([tok] * int(q.values[i]))
            qs = str(qid)
            if "\t" in qs or "\n" in qs:
                raise ValueError(f"query id {qs!r} holds a tab or newline")
            empty += not toks
            f.write(f"{qs}\t{' '.join(toks)}\n")
            count += 1
    return Written(str(path), count, empty)


# ------------------------------------------------------------------------------------------------ running Anserini
def index(
    collection: PathLike,
    index_dir: PathLike,
    *,
    threads: int = 1,
    java: Optional[str] = None,
    jar: Optional[str] = None,
    heap: str = "2g",
    memory_buffer_mb: int = 256,
    timeout: Optional[float] = None,
    extra_args: Sequence[str] = (),
) -> Dict[str, int]:
    """``IndexCollection -collection JsonVectorCollection -generator DefaultLuceneDocumentGenerator -impact
    -pretokenized``; returns Anserini's counters (``indexed``, ``empty``, ``skipped``, ``errors``, ...)."""
    args = [
        "-collection",
        "JsonVectorCollection",
        "-input",
        os.fspath(collection),
        "-index",
        os.fspath(index_dir),
        "-generator",
        "DefaultLuceneDocumentGenerator",
        "-threads",
        str(threads),
        "-impact",
        "-pretokenized",
        "-memoryBuffer",
        str(memory_buffer_mb),
        *extra_args,
    ]
    log = _run(java, jar, "io.anserini.index.IndexCollection", args, heap, timeout)
    # Anserini prints counts with thousands separators ("indexed:  200,000")
    found = re.findall(r"\b(indexed|unindexable|empty|skipped|errors):\s+(\d[\d,]*)", log)
    counters = {k: int(v.replace(",", "")) for k, v in found}
    if "indexed" not in counters:
        raise AnseriniError("IndexCollection printed no counters:\n" + "\n".join(log.splitlines()[-15:]))
    return counters


def read_run(path: PathLike) -> Dict[str, List[Hit]]:
    """A TREC run file (``qid Q0 docid rank score tag``) as ``{qid: [(docid, score), ...]}`` in rank order."""
    runs: Dict[str, List[Tuple[int, str, float]]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 6:
                raise AnseriniError(f"{path}:{n}: not a TREC run line: {line.strip()!r}")
            runs.setdefault(parts[0], []).append((int(parts[3]), parts[2], float(parts[4])))
    return {q: [(d, s) for _, d, s in sorted(hits)] for q, hits in runs.items()}


def search(
    index_dir: PathLike,
    topics: PathLike,
    output: PathLike,
    *,
    k: int = 10,
    threads: int = 1,
    java: Optional[str] = None,
    jar: Optional[str] = None,
    heap: str = "2g",
    timeout: Optional[float] = None,
    extra_args: Sequence[str] = (),
) -> Dict[str, List[Hit]]:
    """``SearchCollection -topicReader TsvString -impact -pretokenized -hits k``; returns :func:`read_run` of the
    run file. Anserini's scores are rounded to 1e-4 and lowered by 1e-6 per earlier tie (its tie adjuster)."""
    args = [
        "-index",
        os.fspath(index_dir),
        "-topics",
        os.fspath(topics),
        "-topicReader",
        "TsvString",
        "-output",
        os.fspath(output),
        "-impact",
        "-pretokenized",
        "-hits",
        str(k),
        "-threads",
        str(threads),
        *extra_args,
    ]
    _run(java, jar, "io.anserini.search.SearchCollection", args, heap, timeout)
    return read_run(output)


# ------------------------------------------------------------------------------------------------ comparing
def reference_index(
    ids: Sequence[Any], vectors: Iterable[SparseVector], vocab_size: int, *, scale: float = 100.0
) -> Any:
    """A :class:`~splade_onnx.SparseIndex` of the quantised integer impacts (ids as strings, like the run file)."""
    from splade_onnx.index import SparseIndex

    return SparseIndex.from_vectors(
        [quantized_vector(v, scale) for v in vectors], [str(i) for i in ids], vocab_size=vocab_size
    )


@dataclass
class Agreement:
    """Per-query comparison of two top-k lists (see :func:`compare_top_k`)."""

    k: int
    compared: int = 0
    equal: int = 0
    identical: int = 0
    with_ties: int = 0
    boundary_ties: int = 0
    max_score: float = 0.0
    disagreements: List[Dict[str, Any]] = field(default_factory=list)
    tie_cuts: List[Dict[str, Any]] = field(default_factory=list)

    def summary(self) -> Dict[str, Any]:
        return {
            "queries_compared": self.compared,
            "queries_equal": self.equal,
            "queries_identical": self.identical,
            "agreement": self.equal / self.compared if self.compared else 0.0,
            "queries_with_ties_in_top_k": self.with_ties,
            "queries_with_a_tie_across_rank_k": self.boundary_ties,
            "max_score": self.max_score,
            "disagreements": self.disagreements[:20],
            "ties_cut_differently_at_rank_k": self.tie_cuts[:20],
        }


def _group(hits: Sequence[Tuple[str, float]]) -> Dict[float, set]:
    out: Dict[float, set] = {}
    for d, s in hits:
        out.setdefault(s, set()).add(d)
    return out


def compare_top_k(
    engine: Dict[str, List[Hit]],
    ours: Dict[str, List[Hit]],
    *,
    k: int = 10,
    index: Any = None,
    queries: Optional[Dict[str, SparseVector]] = None,
) -> Agreement:
    """Compare an engine's top k (e.g. Lucene's, from :func:`search`) with ours (``SparseIndex.search``), query by
    query, on integer scores (the engine's are rounded to the nearest integer; a score further than 1e-3 from one
    counts as a disagreement).

    Two lists are **equal, ties aside**, when they have the same length, the same scores in the same order, and for
    every score the same set of ids -- except the lowest score of a full list (k hits): documents tied there may be
    cut differently at rank k, so there each engine's ids need only be documents that truly have that score, which is
    checked with ``index.explain`` when ``index`` and ``queries`` are given. **Identical**: same ids in the same order.
    """
    a = Agreement(k)
    for qid in sorted(set(engine) | set(ours)):
        e_raw = engine.get(qid, [])[:k]
        o = [(str(d), float(s)) for d, s in ours.get(qid, [])[:k]]
        a.compared += 1
        e = [(d, float(round(s))) for d, s in e_raw]
        why = None
        if any(abs(s - round(s)) > 1e-3 for _, s in e_raw):
            why = "engine score not an integer"
        elif len(e) != len(o):
            why = f"{len(e)} hits against {len(o)}"
        elif [s for _, s in e] != [s for _, s in o]:
            why = "scores differ"
        else:
            ge, go = _group(e), _group(o)
            if len(ge) < len(e):
                a.with_ties += 1
            low = o[-1][1] if o else None
            for s in go:
                if s == low and len(o) == k:
                    if ge[s] != go[s]:
                        a.boundary_ties += 1
                        a.tie_cuts.append({"qid": qid, "score": s, "engine": sorted(ge[s]), "ours": sorted(go[s])})
                    if index is not None and queries is not None:
                        for d in sorted(ge[s] - go[s]):
                            try:
                                true = sum(c.product for c in index.explain(queries[qid], d, top_k=None))
                            except KeyError:
                                why = f"{d} is not in the index"
                                break
                            if true != s:
                                why = f"{d} has score {true}, not the tied {s}"
                                break
                elif ge[s] != go[s]:
                    why = f"ids with score {s} differ"
        if why is None:
            a.equal += 1
            a.identical += [d for d, _ in e] == [d for d, _ in o]
        else:
            a.disagreements.append({"qid": qid, "why": why, "engine": e, "ours": o})
        if o:
            a.max_score = max(a.max_score, o[0][1])
    return a
