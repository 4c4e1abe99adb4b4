"""The :class:`Expander`: text in, SPLADE sparse vectors out, with onnxruntime and tokenizers only."""
from __future__ import annotations

import logging
import os
import threading
import unicodedata
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union, overload
from collections.abc import Mapping

import numpy as np

from splade_onnx.encode import precut as _precut
from splade_onnx.errors import ArtifactError, TextTypeError, TextValueError
from splade_onnx.artifact.hub import resolve_model
from splade_onnx.artifact.manifest import MODEL_NAME, OUTPUT_NAME, TOKENIZER_NAME, Manifest, sha256_file
from splade_onnx.vectors import SparseVector

log = logging.getLogger("splade_onnx")

# Peak bytes of the [tokens x vocab] logits of one onnxruntime run; batches are split to stay under it.
DEFAULT_LOGITS_BUDGET_MB = 128

ProviderSpec = Union[str, Tuple[str, dict]]


def rows_per_run(seq: int, vocab: int, budget_bytes: int, batch_size: int) -> int:
    """Texts per onnxruntime run: at most ``batch_size``, and few enough that the run's ``rows x seq x vocab``
    float32 head product fits ``budget_bytes`` (at least one row, so one text of ``seq`` tokens always runs).

    Peak memory of a call is then about the loaded model + this budget + the run's encoder activations
    (``rows x seq x hidden`` floats, small next to the head product), whatever the batch size and text length.
    """
    return int(max(1, min(batch_size, budget_bytes // max(1, seq * vocab * 4))))


def _normalize_providers(providers: Optional[Sequence[ProviderSpec]]) -> List[ProviderSpec]:
    import onnxruntime as ort

    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    aliases = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider"}
    wanted: List[ProviderSpec] = []
    for p in providers:
        if isinstance(p, str):
            wanted.append(aliases.get(p.lower(), p))
        else:
            wanted.append((aliases.get(p[0].lower(), p[0]), p[1]))
    if any((p if isinstance(p, str) else p[0]) != "CPUExecutionProvider" for p in wanted):
        from splade_onnx.doctor import onnxruntime_conflict

        conflict = onnxruntime_conflict()  # onnxruntime + onnxruntime-gpu side by side: CUDA silently lost
        if conflict:
            log.warning(conflict)
    available = set(ort.get_available_providers())
    usable = [p for p in wanted if (p if isinstance(p, str) else p[0]) in available]
    missing = [p if isinstance(p, str) else p[0] for p in wanted if p not in usable]
    if missing:
        log.warning(
            "execution provider(s) %s not available in this onnxruntime (%s has %s); falling back to %s. "
            "For CUDA install onnxruntime-gpu instead of onnxruntime (see the README, 'GPU').",
            ", ".join(missing), ort.__version__, ", ".join(sorted(available)),
            ", ".join(p if isinstance(p, str) else p[0] for p in usable) or "CPUExecutionProvider",
        )
    if not any((p if isinstance(p, str) else p[0]) == "CPUExecutionProvider" for p in usable):
        usable.append("CPUExecutionProvider")
    return usable


def _ort_reason(e: Exception, limit: int = 300) -> str:
    """onnxruntime's load error without its C++ source location, so the reason itself fits in the message."""
    import re

    msg = " ".join(str(e).split())
    msg = re.sub(r"/\S+\.(?:cc|h|cpp):\d+ \S+?\(.*?\) ", "", msg)
    return msg if len(msg) <= limit else msg[: limit // 3] + " ... " + msg[-(2 * limit) // 3:]


class TruncatingTokenizer:
    """The shared tokenizer seen through a ``max_length``: it truncates exactly as ``tokenizers``' own truncation does
    (cut the sequence to ``max_length`` minus the special tokens, then post-process), without a second parsed copy of
    ``tokenizer.json`` per length (a copy costs ~25 ms of cold start on a 30k vocabulary) and without mutating the
    shared tokenizer, so threads can use any length at once. Over-long encodings keep ``.overflowing`` non-empty."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self._tok = tokenizer
        self._room = max(0, int(max_length) - tokenizer.num_special_tokens_to_add(False))
        self.truncation = {"max_length": int(max_length), "stride": 0, "strategy": "longest_first",
                           "direction": "right"}

    def _finish(self, enc: Any) -> Any:
        if len(enc.ids) > self._room:
            enc.truncate(self._room)
        return self._tok.post_process(enc)

    def encode(self, text: str) -> Any:
        return self._finish(self._tok.encode(text, add_special_tokens=False))

    def encode_batch(self, texts: List[str]) -> List[Any]:
        if len(texts) == 1:  # a single query: skip the thread-pool hand-off of encode_batch (~40 us of ~2 ms)
            return [self.encode(texts[0])]
        return [self._finish(e) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


class Expander:
    """Load a splade-onnx artifact and expand texts into sparse vectors.

    Args:
        model: an artifact folder (from ``splade-onnx export``) or a hub repo id holding one.
        providers: onnxruntime execution providers, e.g. ``["CUDAExecutionProvider"]`` or ``"cuda"``;
            CPU by default. An unavailable provider falls back to CPU with a logged warning.
        threads: intra-op threads for onnxruntime (default: onnxruntime's choice, the physical cores).
        batch_size: texts per batch; batches are formed from texts of similar token length.
        logits_budget_mb: cap on the ``tokens x vocab`` float32 logits of one onnxruntime run; larger batches are
            split so peak memory stays bounded whatever the batch size and length.
        verify: check ``model.onnx`` (and its external weights) against the manifest's sha256 at load.
        io_binding: run through an onnxruntime IO binding (inputs bound from numpy, the output allocated on the
            device and copied to the host once). Default: on when the session runs on CUDA, off on CPU.
        revision, cache_dir, local_files_only: passed to huggingface-hub for hub repo ids.

    Input contract (every case has a test in ``tests/test_hostile_inputs.py``):
        ``expand`` takes a ``str`` (one vector back) or an ordered iterable of ``str`` (a list, tuple, generator,
        numpy array of strings; ``str`` subclasses are fine): one vector per text, in input order. ``None``, a
        number, ``bytes`` or a ``dict``/``set`` as the whole argument raise ``TypeError``. Within a batch, a
        non-``str`` item (``None``, bytes, a number, a nested list) raises
        :class:`~splade_onnx.errors.TextTypeError`; an empty or whitespace-only text, one made only of
        control/format characters, or one with a lone surrogate raises :class:`~splade_onnx.errors.TextValueError`.
        Both name the positions (``.positions``) and keep the vectors of every other text (``.results``, ``None``
        at the bad positions). Any other text (NUL and control characters inside text, combining marks,
        right-to-left scripts, emoji, mixed scripts, a 10 MB string) gives a valid vector; texts far longer than
        ``max_length`` tokens are pre-cut at a word boundary that provably keeps the same tokens, so a 10 MB string
        costs milliseconds, not seconds and a gigabyte. Nothing is mutated between calls and one Expander may be
        shared by threads.
    """

    def __init__(
        self,
        model: "str | os.PathLike[str]",
        *,
        providers: Optional[Sequence[ProviderSpec]] = None,
        threads: Optional[int] = None,
        batch_size: int = 32,
        logits_budget_mb: float = DEFAULT_LOGITS_BUDGET_MB,
        verify: bool = True,
        revision: Optional[str] = None,
        cache_dir: Optional[str] = None,
        local_files_only: Optional[bool] = None,
        prune=None,
        query_model=None,
        long_documents: str = "truncate",
        stride: Optional[int] = None,
        io_binding: Optional[bool] = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.path = resolve_model(model, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        self.manifest = Manifest.read(self.path)
        self.batch_size = batch_size
        self.logits_budget_bytes = int(logits_budget_mb * (1 << 20))
        model_path = os.path.join(self.path, self.manifest.files.get("model", MODEL_NAME))
        tok_path = os.path.join(self.path, self.manifest.files.get("tokenizer", TOKENIZER_NAME))
        data_name = self.manifest.files.get("model_data")
        data_path = os.path.join(self.path, data_name) if data_name else None
        for p, what in ((model_path, "ONNX graph"), (data_path, "ONNX weights (external data)"),
                        (tok_path, "tokenizer")):
            if p is not None and not os.path.isfile(p):
                raise ArtifactError(f"{what} file is missing; re-export or re-download the artifact", p)
        # The sha256 of model.onnx (and of its external weights) is computed in a thread while the tokenizer and the
        # session load (hashlib and onnxruntime release the GIL), so verification costs no cold-start time on a
        # 2-core machine; a mismatch is still raised before the constructor returns, and takes precedence over a
        # session load error.
        hasher: Optional[threading.Thread] = None
        digest_box: Dict[str, str] = {}
        expected = {model_path: self.manifest.model_sha256} if verify and self.manifest.model_sha256 else {}
        if verify and data_path and self.manifest.model_data_sha256:
            expected[data_path] = self.manifest.model_data_sha256
        if expected:
            def _hash() -> None:
                for path in expected:
                    try:
                        digest_box[path] = sha256_file(path)
                    except OSError:  # pragma: no cover - an unreadable file: the session load reports it
                        pass

            hasher = threading.Thread(target=_hash, name="splade-onnx-sha256", daemon=True)
            hasher.start()

        def _check_digest() -> None:
            if hasher is None:
                return
            hasher.join()
            for path, want in expected.items():
                digest = digest_box.get(path)
                if digest is not None and digest != want:
                    raise ArtifactError(
                        f"sha256 {digest[:12]}... does not match the manifest ({str(want)[:12]}...): "
                        "the file is corrupt or was replaced; re-export or re-download the artifact",
                        path,
                    )

        try:
            self._tokenizer = self._load_tokenizer(tok_path)
            self._session = self._load_session(model_path, providers, threads)
        except BaseException:
            _check_digest()
            raise
        _check_digest()
        self._input_names = [i.name for i in self._session.get_inputs()]
        from splade_onnx.encode.session import session_device

        self._device = session_device(self._session)
        # IO binding: on by default on CUDA (output allocated on the device, copied back once), optional on CPU
        self.io_binding = (self._device == "cuda") if io_binding is None else bool(io_binding)
        self._tok_by_len: Dict[int, object] = {}
        self._tok_lock = threading.Lock()
        self._vocab: Optional[List[str]] = None
        # deployment options (pruning.py, roles.py, windows.py): default pruning, query role, long-document mode
        from splade_onnx.encode import pruning
        from splade_onnx.encode import roles
        from splade_onnx.encode import windows

        self.prune = pruning.parse_spec(prune)
        self.long_documents = windows.check_mode(long_documents)
        self.stride = stride
        self._query_role = roles.load_query_role(
            self, query_model, providers=providers, threads=threads, verify=verify, revision=revision,
            cache_dir=cache_dir, local_files_only=local_files_only)

    # ----------------------------------------------------------------------------------------------- loading
    def _load_tokenizer(self, tok_path: str):
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(tok_path)
        except Exception as e:  # noqa: BLE001
            raise ArtifactError(f"tokenizer cannot be read ({e}); re-export the artifact", tok_path) from e
        vocab_n = tok.get_vocab_size(with_added_tokens=True)
        if vocab_n > self.manifest.vocab_size:
            raise ArtifactError(
                f"tokenizer has {vocab_n} tokens but the model outputs {self.manifest.vocab_size} weights; "
                "the tokenizer does not belong to this model; re-export the artifact (or copy the model's own "
                "tokenizer.json back)",
                tok_path,
            )
        # a few ids of padding are common (embeddings rounded up to a multiple of 8/64); far fewer tokens is not
        # (a smaller tokenizer cannot produce an out-of-range id, and random-init test models pair real vocab sizes
        # with a substitute tokenizer, so it is a warning; a foreign tokenizer is caught by the special-token ids)
        if vocab_n < 0.9 * self.manifest.vocab_size:
            log.warning(
                "%s: tokenizer has %d tokens, far fewer than the %d weights the model outputs; output dimensions "
                "past %d can still fire but no text token maps to them. If this is not intended, re-export the "
                "artifact with the model's own tokenizer.", tok_path, vocab_n, self.manifest.vocab_size, vocab_n,
            )
        for role, spec in (self.manifest.special_tokens or {}).items():
            if not isinstance(spec, dict) or spec.get("token") is None or spec.get("id") is None:
                continue
            got = tok.token_to_id(str(spec["token"]))
            if got != spec["id"]:
                raise ArtifactError(
                    f"tokenizer maps the {role} token {spec['token']!r} to id {got}, the manifest says {spec['id']}; "
                    "the tokenizer does not belong to this model: re-export the artifact (or copy the model's own "
                    "tokenizer.json back)",
                    tok_path,
                )
        tok.no_padding()
        tok.no_truncation()
        return tok

    def _load_session(self, model_path: str, providers, threads):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        # Exported artifacts store onnxruntime's optimised graph (manifest extra.optimization): load them at "basic"
        # (constant folding only) and never spend load time on fusions; older artifacts keep onnxruntime's default.
        if (self.manifest.extra or {}).get("optimization"):
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        # CPU arena on: without it every run page-faults a fresh logits buffer (measured on splade-tiny, batch 32 x
        # 256: 34 docs/s without, 59 docs/s with, same 270 MB peak). The arena keeps about one run's worth, which the
        # logits budget bounds. SPLADE_ONNX_CPU_ARENA=0 turns it off (the peak is then returned after each call).
        so.enable_cpu_mem_arena = bool(int(os.environ.get("SPLADE_ONNX_CPU_ARENA", "1")))
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(model_path, so, providers=_normalize_providers(providers))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf types
            raise ArtifactError(
                f"onnxruntime cannot load the graph ({type(e).__name__}: {_ort_reason(e)}); "
                "the file is truncated or corrupt, or needs a newer onnxruntime: re-export or re-download the "
                "artifact (or upgrade onnxruntime)",
                model_path,
            ) from e
        outs = sess.get_outputs()
        names = [o.name for o in outs]
        if names != [OUTPUT_NAME]:
            raise ArtifactError(
                f"graph outputs {names}, expected one output {OUTPUT_NAME!r}: this is not a fused SPLADE graph "
                "(a plain MLM ONNX? use `splade-onnx export` or `splade-onnx fuse`)",
                model_path,
            )
        shape = outs[0].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != self.manifest.vocab_size):
            raise ArtifactError(
                f"graph output shape {shape} does not match the manifest's vocab_size {self.manifest.vocab_size}: "
                "model.onnx and splade_onnx.json are from different exports; re-export the artifact",
                model_path,
            )
        missing = [n for n in self.manifest.inputs if n not in [i.name for i in sess.get_inputs()]]
        if missing:
            raise ArtifactError(f"graph lacks inputs {missing} named in the manifest; re-export the artifact",
                                model_path)
        return sess

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        return self.manifest.vocab_size

    @property
    def providers(self) -> List[str]:
        """Execution providers of the onnxruntime session, in priority order."""
        return list(self._session.get_providers())

    @property
    def max_length(self) -> Dict[str, int]:
        return dict(self.manifest.max_length)

    def _tokenizer_for(self, max_length: int) -> "TruncatingTokenizer":
        """The shared tokenizer truncating at ``max_length`` (one cached view per length)."""
        tok = self._tok_by_len.get(max_length)
        if tok is None:
            with self._tok_lock:
                tok = self._tok_by_len.get(max_length)
                if tok is None:
                    tok = TruncatingTokenizer(self._tokenizer, max_length)
                    self._tok_by_len[max_length] = tok
        return tok  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------------------- encoding
    @overload
    def expand(  # type: ignore[overload-overlap]  # a str is also an Iterable[str]: the str overload wins
        self, texts: str, *, max_length: Optional[int] = ..., batch_size: Optional[int] = ..., prune: Any = ...,
        long_documents: Optional[str] = ..., stride: Optional[int] = ...,
    ) -> SparseVector: ...
    @overload
    def expand(
        self, texts: Iterable[str], *, max_length: Optional[int] = ..., batch_size: Optional[int] = ...,
        prune: Any = ..., long_documents: Optional[str] = ..., stride: Optional[int] = ...,
    ) -> List[SparseVector]: ...

    def expand(self, texts, *, max_length=None, batch_size=None, prune=None, long_documents=None, stride=None):
        """Encode texts into sparse vectors, in input order.

        ``texts`` is a list (or any iterable) of strings; a single ``str`` returns a single vector.
        ``max_length`` defaults to the manifest's document length. Longer texts are truncated with one warning per
        call that says how many, or, with ``long_documents="window"``, encoded by overlapping windows of
        ``max_length`` tokens (``stride`` content tokens apart) merged by max (see :mod:`splade_onnx.encode.windows`).
        ``prune`` (e.g. ``("top_k", 64)``, ``"max_ratio=0.1"``) prunes each vector with OpenSearch's semantics
        (see :mod:`splade_onnx.encode.pruning`); it defaults to the Expander's ``prune``. A non-string item raises :class:`~splade_onnx.errors.TextTypeError` (a
        ``TypeError``) and an empty, whitespace-only or invalid-Unicode one :class:`~splade_onnx.errors.TextValueError`
        (a ``ValueError``), naming the positions; the vectors of every other text are computed and kept on the
        exception's ``.results``.
        """
        if isinstance(texts, str):
            return self.expand([texts], max_length=max_length, batch_size=batch_size, prune=prune,
                               long_documents=long_documents, stride=stride)[0]
        if isinstance(texts, (bytes, bytearray)):
            raise TextTypeError(f"texts must be strings, got {type(texts).__name__}; decode it first", [0], [None])
        if isinstance(texts, (Mapping, set, frozenset)):  # keys or values? and a set has no order to return
            raise TypeError(f"texts must be a list (or other ordered iterable) of strings, got {type(texts).__name__}; "
                            "pass list(d.values()) or sorted(s)")
        if texts is None or not isinstance(texts, Iterable):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        items = list(texts)
        if max_length is None:
            max_length = self.manifest.max_length["document"]
        if not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        model_max = self.manifest.max_length.get("model")
        if model_max and max_length > model_max:
            raise ValueError(f"max_length {max_length} exceeds the model's window of {model_max} tokens")
        bad_type, bad_value, good = self._validate(items)
        results: List[Optional[SparseVector]] = [None] * len(items)
        if good:
            from splade_onnx.encode import pruning
            from splade_onnx.encode import windows

            mode = windows.check_mode(long_documents or self.long_documents)
            if mode == "window":
                vecs = windows.encode_windowed(self, [items[i] for i in good], max_length,
                                               stride if stride is not None else self.stride,
                                               batch_size or self.batch_size)
            else:
                # huge texts: tokenize only a prefix that provably keeps the same tokens (see _precut.py)
                good_texts = _precut.precut([items[i] for i in good], max_length, self._tokenizer,
                                            self._tokenizer_for(max_length))
                vecs = self._encode(good_texts, max_length, batch_size or self.batch_size)
            vecs = pruning.apply(vecs, prune if prune is not None else self.prune)
            for i, v in zip(good, vecs):
                results[i] = v
        if bad_type or bad_value:
            first_type = bad_type[0] if bad_type else len(items)
            first_value = bad_value[0][0] if bad_value else len(items)
            parts = []
            if bad_type:
                parts.append(
                    "not a str at position(s) "
                    + ", ".join(f"{i} ({type(items[i]).__name__})" for i in bad_type[:10])
                    + (" ..." if len(bad_type) > 10 else "")
                )
            if bad_value:
                parts.append("; ".join(f"position {i}: {why}" for i, why in bad_value[:10]))
            msg = "; ".join(parts) + ". The other texts were encoded: see the exception's .results"
            if first_type < first_value:
                raise TextTypeError(msg, bad_type + [i for i, _ in bad_value], results)
            raise TextValueError(msg, [i for i, _ in bad_value] + bad_type, results)
        return results  # type: ignore[return-value]

    def encode_queries(self, texts, *, max_length: Optional[int] = None, batch_size: Optional[int] = None, prune=None):
        """:meth:`expand` with the manifest's query length, or the query role's encoder (a separate query model, or
        the IDF table of a document-only artifact) when the artifact or ``query_model=`` defines one."""
        if self._query_role is not None:
            return self._query_role.encode(texts, max_length=max_length, batch_size=batch_size,
                                           prune=prune if prune is not None else self.prune)
        return self.expand(texts, max_length=max_length or self.manifest.max_length["query"], batch_size=batch_size,
                           prune=prune)

    def encode_documents(self, texts, *, max_length: Optional[int] = None, batch_size: Optional[int] = None, prune=None,
                         long_documents=None, stride=None):
        """:meth:`expand` with the manifest's document length."""
        return self.expand(texts, max_length=max_length or self.manifest.max_length["document"], batch_size=batch_size,
                           prune=prune, long_documents=long_documents, stride=stride)

    encode_query = encode_queries
    encode_document = encode_documents

    def expand_iter(self, texts: Iterable[str], *, chunk_size: int = 256, progress: bool = False,
                    total: Optional[int] = None, **expand_kwargs):
        """Stream: yield one vector per text in input order, holding only ``chunk_size`` texts (and their vectors)
        at a time, so a corpus of any length encodes in flat memory. ``progress=True`` shows a tqdm bar when tqdm
        is installed (``total`` sizes it for generators). Other keyword arguments go to :meth:`expand`. A bad item
        raises like :meth:`expand`, with ``.positions`` counted from the start of the stream."""
        from splade_onnx.encode.stream import expand_iter

        return expand_iter(self, texts, chunk_size=chunk_size, progress=progress, total=total, **expand_kwargs)

    encode_stream = expand_iter

    @staticmethod
    def _validate(items: Sequence[object]):
        bad_type: List[int] = []
        bad_value: List[Tuple[int, str]] = []
        good: List[int] = []
        for i, t in enumerate(items):
            if not isinstance(t, str):
                bad_type.append(i)
            elif not t.strip():
                bad_value.append((i, "empty or whitespace-only text"))
            else:
                try:
                    t.encode("utf-8")
                except UnicodeEncodeError:
                    bad_value.append((i, "not valid Unicode (lone surrogate); fix the text's encoding"))
                    continue
                if not any(not (c.isspace() or unicodedata.category(c)[0] == "C") for c in t):  # stops at 1st letter
                    bad_value.append((i, "only control/format characters (nothing to tokenize)"))
                    continue
                good.append(i)
        return bad_type, bad_value, good

    def _run(self, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        """One onnxruntime run -> the ``[rows, vocab]`` weights on the host (IO binding when enabled)."""
        if self.io_binding:
            from splade_onnx.encode.session import run_bound

            return run_bound(self._session, feeds, OUTPUT_NAME, self._device)
        return self._session.run([OUTPUT_NAME], feeds)[0]

    def _encode(self, texts: List[str], max_length: int, batch_size: int) -> List[SparseVector]:
        tok = self._tokenizer_for(max_length)
        encodings = tok.encode_batch(texts)
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} text(s) exceed max_length={max_length} tokens and were truncated; "
                "pass a larger max_length (up to the model's window) or split long documents",
                UserWarning,
                stacklevel=3,
            )
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: the biggest allocation happens once, early
        out: List[Optional[SparseVector]] = [None] * len(texts)
        vocab = self.manifest.vocab_size
        pad_id = self.manifest.pad_token_id
        need_tti = "token_type_ids" in self._input_names
        start = 0
        n = len(texts)
        while start < n:
            seq = int(lengths[order[start]])
            # Cap the texts of one run so its [rows x seq x vocab] float32 logits fit the budget.
            rows = min(rows_per_run(seq, vocab, self.logits_budget_bytes, batch_size), n - start)
            idx = order[start : start + rows]
            ids = np.full((rows, seq), pad_id, dtype=np.int64)
            mask = np.zeros((rows, seq), dtype=np.int64)
            for r, j in enumerate(idx):
                e = encodings[j]
                L = len(e.ids)
                ids[r, :L] = e.ids
                mask[r, :L] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if need_tti:
                feeds["token_type_ids"] = np.zeros_like(ids)
            dense = self._run(feeds)
            for r, j in enumerate(idx):
                out[j] = SparseVector.from_dense(dense[r])
            start += rows
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------------------- decoding
    @property
    def vocab(self) -> List[str]:
        """Token strings by id."""
        if self._vocab is None:
            v = [""] * self.manifest.vocab_size
            for tok, i in self._tokenizer.get_vocab(with_added_tokens=True).items():
                if 0 <= i < len(v):
                    v[i] = tok
            self._vocab = v
        return self._vocab

    def decode(self, vector: SparseVector, top_k: Optional[int] = None) -> List[Tuple[str, float]]:
        """``[(token, weight), ...]`` heaviest first (ties by token id), like the model cards' "BOW rep"."""
        order = np.lexsort((vector.indices, -vector.values))
        if top_k is not None:
            order = order[:top_k]
        vocab = self.vocab
        return [(vocab[int(vector.indices[i])], float(vector.values[i])) for i in order]

    def to_rank_features(self, vector: SparseVector) -> Dict[str, float]:
        """``{token: weight}``: an OpenSearch/Elasticsearch ``rank_features`` / Lucene-style document."""
        vocab = self.vocab
        return {vocab[int(i)]: float(w) for i, w in zip(vector.indices, vector.values)}

    def __repr__(self) -> str:
        m = self.manifest
        return f"Expander({m.source!r}, architecture={m.architecture!r}, vocab={m.vocab_size}, providers={self.providers})"
