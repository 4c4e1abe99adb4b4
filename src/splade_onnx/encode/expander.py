"""The :class:`Expander`: text in, SPLADE sparse vectors out, with onnxruntime and tokenizers only.

It wires the encode steps together: the artifact's files (:mod:`splade_onnx.artifact`), the tokenizer and its
truncating views (:mod:`.tokenize`, :mod:`.precut`), the session and the one batching loop (:mod:`.session`,
:mod:`.batching`), long-document windows (:mod:`.windows`), query roles (:mod:`.roles`), pruning (:mod:`.pruning`)
and streaming (:mod:`.stream`).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union, overload

import numpy as np

from splade_onnx.artifact.hub import resolve_model
from splade_onnx.artifact.manifest import MODEL_NAME, TOKENIZER_NAME, Manifest, sha256_file
from splade_onnx.encode import precut, pruning, roles, windows
from splade_onnx.encode.batching import CUDA_LOGITS_BUDGET_MB, DEFAULT_LOGITS_BUDGET_MB
from splade_onnx.encode.session import ProviderSpec, SpladeSession
from splade_onnx.encode.stream import expand_iter
from splade_onnx.encode.tokenize import (
    TokenizerViews,
    TruncatingTokenizer,
    load_tokenizer,
    raise_bad_texts,
    validate_texts,
)
from splade_onnx.errors import ArtifactError, TextTypeError
from splade_onnx.vectors import SparseVector

log = logging.getLogger("splade_onnx")

Providers = Optional[Union[str, Sequence[ProviderSpec]]]


class Expander:
    """Load a splade-onnx artifact and expand texts into sparse vectors.

    Args:
        model: an artifact folder (from ``splade-onnx export``) or a hub repo id holding one.
        providers: onnxruntime execution providers, e.g. ``["CUDAExecutionProvider"]`` or ``"cuda"``;
            CPU by default. An unavailable provider falls back to CPU with a logged warning.
        threads: intra-op threads for onnxruntime (default: onnxruntime's choice, the physical cores).
        batch_size: texts per batch; batches are formed from texts of similar token length.
        logits_budget_mb: cap on the ``tokens x vocab`` float32 logits of one onnxruntime run; larger batches are
            split so peak memory stays bounded whatever the batch size and length. Default: 128 MB on CPU, 4096 MB
            when the session runs on CUDA (whole batches for the GPU; see ``batching.CUDA_LOGITS_BUDGET_MB``).
        verify: check ``model.onnx`` (and its external weights) against the manifest's sha256 at load.
        revision, cache_dir, local_files_only: passed to huggingface-hub for hub repo ids.
        prune: default pruning of every vector, e.g. ``("top_k", 64)``, ``"max_ratio=0.1"`` or OpenSearch's
            ``{"prune_type": ..., "prune_ratio": ...}`` (see :mod:`splade_onnx.encode.pruning`); ``None`` keeps all.
        query_model: how :meth:`encode_queries` encodes: another artifact (path or hub id) or ``Expander`` with the
            same vocabulary, or ``"idf"`` for the artifact's document-only IDF table; default: the artifact's own
            query role (see :mod:`splade_onnx.encode.roles`), else its own model.
        long_documents: ``"truncate"`` (default: one warning per call says how many texts were cut) or
            ``"window"``: overlapping windows of ``max_length`` tokens merged by max (see
            :mod:`splade_onnx.encode.windows`; max pooling only).
        stride: content tokens between window starts for ``long_documents="window"`` (default: half a window).
        io_binding: run through an onnxruntime IO binding (inputs bound from numpy, the output allocated on the
            device and copied to the host once). Default: on when the session runs on CUDA, off on CPU.

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
        providers: Providers = None,
        threads: Optional[int] = None,
        batch_size: int = 32,
        logits_budget_mb: Optional[float] = None,
        verify: bool = True,
        revision: Optional[str] = None,
        cache_dir: Optional[str] = None,
        local_files_only: Optional[bool] = None,
        prune: pruning.PruneSpec = None,
        query_model: "Union[None, str, os.PathLike[str], Expander]" = None,
        long_documents: str = "truncate",
        stride: Optional[int] = None,
        io_binding: Optional[bool] = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.path = resolve_model(model, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        self.manifest = Manifest.read(self.path)
        self.batch_size = batch_size
        model_path = os.path.join(self.path, self.manifest.files.get("model", MODEL_NAME))
        tok_path = os.path.join(self.path, self.manifest.files.get("tokenizer", TOKENIZER_NAME))
        data_name = self.manifest.files.get("model_data")
        data_path = os.path.join(self.path, data_name) if data_name else None
        for p, what in (
            (model_path, "ONNX graph"),
            (data_path, "ONNX weights (external data)"),
            (tok_path, "tokenizer"),
        ):
            if p is not None and not os.path.isfile(p):
                raise ArtifactError(f"{what} file is missing; re-export or re-download the artifact", p)
        expected = {model_path: self.manifest.model_sha256} if verify and self.manifest.model_sha256 else {}
        if verify and data_path and self.manifest.model_data_sha256:
            expected[data_path] = self.manifest.model_data_sha256
        # The sha256 of model.onnx (and of its external weights) is computed in a thread while the tokenizer and the
        # session load (hashlib and onnxruntime release the GIL), so verification costs no cold-start time on a
        # 2-core machine; a mismatch is still raised before the constructor returns, and takes precedence over a
        # session load error.
        check_digests = _verify_in_background(expected)
        try:
            self._tokens = TokenizerViews(load_tokenizer(tok_path, self.manifest), self.manifest.vocab_size)
            self._session = SpladeSession(
                model_path, self.manifest, providers=providers, threads=threads, io_binding=io_binding
            )
        except BaseException:
            check_digests()
            raise
        check_digests()
        if logits_budget_mb is None:
            logits_budget_mb = CUDA_LOGITS_BUDGET_MB if self._session.device == "cuda" else DEFAULT_LOGITS_BUDGET_MB
        self.logits_budget_bytes = int(logits_budget_mb * (1 << 20))
        # deployment options: default pruning, long-document mode, query role
        self.prune = pruning.parse_spec(prune)
        self.long_documents = windows.check_mode(long_documents)
        self.stride = stride
        self._query_role = self._load_query_role(
            query_model,
            providers=providers,
            threads=threads,
            verify=verify,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )

    def _load_query_role(
        self, query_model: "Union[None, str, os.PathLike[str], Expander]", **load_kwargs: Any
    ) -> Optional[roles.QueryRole]:
        """The query role: from ``query_model=`` (an Expander, an artifact path or hub id, or ``"idf"``), else from
        the manifest's ``extra["roles"]["query"]``, else ``None`` (queries use the artifact's own model)."""
        spec = roles.query_spec(self.manifest)
        if query_model is None and spec is None:
            return None
        if query_model == "idf" or (query_model is None and spec is not None and spec.get("kind") == "idf"):
            if spec is None or spec.get("kind") != "idf":
                raise ArtifactError(
                    "query_model='idf' but this artifact has no IDF table; build one with "
                    "`splade-onnx idf CORPUS --model ARTIFACT --out OUT`",
                    self.path,
                )
            return roles.IdfQueryRole(self.path, self.manifest, self._tokens, spec)
        if isinstance(query_model, Expander):
            query = query_model
        else:
            if query_model is None:
                assert spec is not None
                if spec.get("kind") != "model":
                    raise ArtifactError(f"unknown query role kind {spec.get('kind')!r} (known: model, idf)", self.path)
                source: "str | os.PathLike[str]" = os.path.join(self.path, spec.get("path", roles.QUERY_DIR))
                load_kwargs = {k: v for k, v in load_kwargs.items() if k in ("providers", "threads", "verify")}
            else:
                source = query_model
            query = Expander(
                source, batch_size=self.batch_size, logits_budget_mb=self.logits_budget_bytes / (1 << 20), **load_kwargs
            )
        if query.manifest.vocab_size != self.manifest.vocab_size or (
            query.tokenizer.get_vocab(with_added_tokens=True) != self.tokenizer.get_vocab(with_added_tokens=True)
        ):
            raise ArtifactError(
                f"the query model ({query.path}) and the document model ({self.path}) have different vocabularies: "
                "their vectors would not share dimensions",
                query.path,
            )
        return roles.ModelQueryRole(query)

    # ----------------------------------------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        """Dimensions of every vector (the graph's output width)."""
        return self.manifest.vocab_size

    @property
    def providers(self) -> List[str]:
        """Execution providers of the onnxruntime session, in priority order."""
        return self._session.providers

    @property
    def io_binding(self) -> bool:
        """Whether runs go through an onnxruntime IO binding."""
        return self._session.io_binding

    @property
    def max_length(self) -> Dict[str, int]:
        """The manifest's token lengths: ``query``, ``document`` and the model's window ``model``."""
        return dict(self.manifest.max_length)

    @property
    def tokenizer(self) -> Any:
        """The artifact's ``tokenizers.Tokenizer`` (no truncation, no padding); shared: do not mutate it."""
        return self._tokens.base

    def tokenizer_for(self, max_length: int) -> TruncatingTokenizer:
        """The shared tokenizer truncating at ``max_length`` exactly as the encoder does (one view per length)."""
        return self._tokens.truncating(max_length)

    @property
    def query_role(self) -> Optional[roles.QueryRole]:
        """How :meth:`encode_queries` encodes when not with this model (a query model or an IDF table), or None."""
        return self._query_role

    # ----------------------------------------------------------------------------------------------- encoding
    @overload
    def expand(  # type: ignore[overload-overlap]  # a str is also an Iterable[str]: the str overload wins
        self,
        texts: str,
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
        long_documents: Optional[str] = ...,
        stride: Optional[int] = ...,
    ) -> SparseVector: ...
    @overload
    def expand(
        self,
        texts: Iterable[str],
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
        long_documents: Optional[str] = ...,
        stride: Optional[int] = ...,
    ) -> List[SparseVector]: ...

    def expand(
        self,
        texts: Union[str, Iterable[str]],
        *,
        max_length: Optional[int] = None,
        batch_size: Optional[int] = None,
        prune: pruning.PruneSpec = None,
        long_documents: Optional[str] = None,
        stride: Optional[int] = None,
    ) -> Union[SparseVector, List[SparseVector]]:
        """Encode texts into sparse vectors, in input order.

        ``texts`` is a list (or any iterable) of strings; a single ``str`` returns a single vector.
        ``max_length`` defaults to the manifest's document length. Longer texts are truncated with one warning per
        call that says how many, or, with ``long_documents="window"``, encoded by overlapping windows of
        ``max_length`` tokens (``stride`` content tokens apart) merged by max (see :mod:`splade_onnx.encode.windows`).
        ``prune`` (e.g. ``("top_k", 64)``, ``"max_ratio=0.1"``) prunes each vector with OpenSearch's semantics
        (see :mod:`splade_onnx.encode.pruning`); it defaults to the Expander's ``prune``. A non-string item raises
        :class:`~splade_onnx.errors.TextTypeError` (a ``TypeError``) and an empty, whitespace-only or invalid-Unicode
        one :class:`~splade_onnx.errors.TextValueError` (a ``ValueError``), naming the positions; the vectors of every
        other text are computed and kept on the exception's ``.results``.
        """
        if isinstance(texts, str):
            return self.expand(
                [texts],
                max_length=max_length,
                batch_size=batch_size,
                prune=prune,
                long_documents=long_documents,
                stride=stride,
            )[0]
        if isinstance(texts, (bytes, bytearray)):
            raise TextTypeError(f"texts must be strings, got {type(texts).__name__}; decode it first", [0], [None])
        if isinstance(texts, (Mapping, set, frozenset)):  # keys or values? and a set has no order to return
            raise TypeError(
                f"texts must be a list (or other ordered iterable) of strings, got {type(texts).__name__}; "
                "pass list(d.values()) or sorted(s)"
            )
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
        bad_type, bad_value, good = validate_texts(items)
        results: List[Optional[SparseVector]] = [None] * len(items)
        if good:
            good_texts = [str(items[i]) for i in good]  # validated: every good item is a str
            batch = batch_size or self.batch_size
            if windows.check_mode(long_documents or self.long_documents) == "window":
                vecs = windows.encode_windowed(
                    self._session,
                    self._tokens.base,
                    good_texts,
                    window=max_length,
                    stride=stride if stride is not None else self.stride,
                    batch_size=batch,
                    budget_bytes=self.logits_budget_bytes,
                    pooling=self.manifest.pooling,
                )
            else:
                vecs = self._encode_truncated(good_texts, max_length, batch)
            for i, v in zip(good, pruning.apply(list(vecs), prune if prune is not None else self.prune)):
                results[i] = v
        if bad_type or bad_value:
            raise_bad_texts(items, bad_type, bad_value, results)
        return results  # type: ignore[return-value]

    @overload
    def encode_queries(  # type: ignore[overload-overlap]
        self,
        texts: str,
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
    ) -> SparseVector: ...
    @overload
    def encode_queries(
        self,
        texts: Iterable[str],
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
    ) -> List[SparseVector]: ...

    def encode_queries(
        self,
        texts: Union[str, Iterable[str]],
        *,
        max_length: Optional[int] = None,
        batch_size: Optional[int] = None,
        prune: pruning.PruneSpec = None,
    ) -> Union[SparseVector, List[SparseVector]]:
        """:meth:`expand` with the manifest's query length, or the query role's encoder (a separate query model, or
        the IDF table of a document-only artifact) when the artifact or ``query_model=`` defines one."""
        if self._query_role is not None:
            return self._query_role.encode(
                texts, max_length=max_length, batch_size=batch_size, prune=prune if prune is not None else self.prune
            )
        return self.expand(
            texts, max_length=max_length or self.manifest.max_length["query"], batch_size=batch_size, prune=prune
        )

    @overload
    def encode_documents(  # type: ignore[overload-overlap]
        self,
        texts: str,
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
        long_documents: Optional[str] = ...,
        stride: Optional[int] = ...,
    ) -> SparseVector: ...
    @overload
    def encode_documents(
        self,
        texts: Iterable[str],
        *,
        max_length: Optional[int] = ...,
        batch_size: Optional[int] = ...,
        prune: pruning.PruneSpec = ...,
        long_documents: Optional[str] = ...,
        stride: Optional[int] = ...,
    ) -> List[SparseVector]: ...

    def encode_documents(
        self,
        texts: Union[str, Iterable[str]],
        *,
        max_length: Optional[int] = None,
        batch_size: Optional[int] = None,
        prune: pruning.PruneSpec = None,
        long_documents: Optional[str] = None,
        stride: Optional[int] = None,
    ) -> Union[SparseVector, List[SparseVector]]:
        """:meth:`expand` with the manifest's document length."""
        return self.expand(
            texts,
            max_length=max_length or self.manifest.max_length["document"],
            batch_size=batch_size,
            prune=prune,
            long_documents=long_documents,
            stride=stride,
        )

    def encode_query(self, texts: Any, **kwargs: Any) -> Any:
        """Deprecated alias of :meth:`encode_queries`."""
        warnings.warn("Expander.encode_query is deprecated; use encode_queries", DeprecationWarning, stacklevel=2)
        return self.encode_queries(texts, **kwargs)

    def encode_document(self, texts: Any, **kwargs: Any) -> Any:
        """Deprecated alias of :meth:`encode_documents`."""
        warnings.warn("Expander.encode_document is deprecated; use encode_documents", DeprecationWarning, stacklevel=2)
        return self.encode_documents(texts, **kwargs)

    def expand_iter(
        self,
        texts: Iterable[str],
        *,
        chunk_size: int = 256,
        progress: bool = False,
        total: Optional[int] = None,
        **expand_kwargs: Any,
    ) -> Iterator[SparseVector]:
        """Stream: yield one vector per text in input order, holding only ``chunk_size`` texts (and their vectors)
        at a time, so a corpus of any length encodes in flat memory. ``progress=True`` shows a tqdm bar when tqdm
        is installed (``total`` sizes it for generators). Other keyword arguments go to :meth:`expand`. A bad item
        raises like :meth:`expand`, with ``.positions`` counted from the start of the stream."""
        return expand_iter(self.expand, texts, chunk_size=chunk_size, progress=progress, total=total, **expand_kwargs)

    def encode_stream(self, texts: Iterable[str], **kwargs: Any) -> Iterator[SparseVector]:
        """Deprecated alias of :meth:`expand_iter`."""
        warnings.warn("Expander.encode_stream is deprecated; use expand_iter", DeprecationWarning, stacklevel=2)
        return self.expand_iter(texts, **kwargs)

    def _encode_truncated(self, texts: List[str], max_length: int, batch_size: int) -> List[SparseVector]:
        """Tokenize (truncating at ``max_length``, warning once per call) and run the batching loop."""
        tok = self._tokens.truncating(max_length)
        # huge texts: tokenize only a prefix that provably keeps the same tokens (see precut.py)
        encodings = tok.encode_batch(precut.precut(texts, max_length, self._tokens.base, tok))
        truncated = sum(1 for e in encodings if e.overflowing)
        if truncated:
            warnings.warn(
                f"{truncated} of {len(texts)} text(s) exceed max_length={max_length} tokens and were truncated; "
                "pass a larger max_length (up to the model's window) or split long documents",
                UserWarning,
                stacklevel=4,
            )
        out: List[Optional[SparseVector]] = [None] * len(texts)
        for idx, dense in self._session.run_sequences(
            [e.ids for e in encodings], batch_size=batch_size, budget_bytes=self.logits_budget_bytes
        ):
            for r, j in enumerate(idx):
                out[j] = SparseVector.from_dense(dense[r])
        return out  # type: ignore[return-value]

    # ----------------------------------------------------------------------------------------------- decoding
    @property
    def vocab(self) -> List[str]:
        """Token strings by id."""
        return self._tokens.vocab

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
        return (
            f"Expander({m.source!r}, architecture={m.architecture!r}, vocab={m.vocab_size}, providers={self.providers})"
        )


def _verify_in_background(expected: Dict[str, str]) -> Any:
    """Start hashing ``{path: sha256}`` in a thread; returns a function that waits and raises
    :class:`ArtifactError` on the first mismatch (an unreadable file is left to the session load to report)."""
    if not expected:
        return lambda: None
    digests: Dict[str, str] = {}

    def _hash() -> None:
        for path in expected:
            try:
                digests[path] = sha256_file(path)
            except OSError:  # pragma: no cover - an unreadable file: the session load reports it
                pass

    hasher = threading.Thread(target=_hash, name="splade-onnx-sha256", daemon=True)
    hasher.start()

    def check() -> None:
        hasher.join()
        for path, want in expected.items():
            digest = digests.get(path)
            if digest is not None and digest != want:
                raise ArtifactError(
                    f"sha256 {digest[:12]}... does not match the manifest ({str(want)[:12]}...): "
                    "the file is corrupt or was replaced; re-export or re-download the artifact",
                    path,
                )

    return check
