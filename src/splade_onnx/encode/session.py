"""onnxruntime sessions: the one place that creates them (providers, threads, arena) and runs them (IO binding on
CUDA: inputs copied once, the output kept on the device until one copy back)."""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from splade_onnx.artifact.manifest import OUTPUT_NAME, Manifest
from splade_onnx.encode.batching import run_sequences
from splade_onnx.errors import ArtifactError

log = logging.getLogger("splade_onnx")

NO_CUDA_REASON = "no CUDA execution provider in this onnxruntime (install onnxruntime-gpu on a machine with a GPU)"

ProviderSpec = Union[str, Tuple[str, Dict[str, Any]]]
_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "gpu": "CUDAExecutionProvider"}

# CUDA provider options this package sets unless the caller names them. onnxruntime's CUDA provider runs float32
# MatMuls in TF32 by default (10-bit mantissa): on an H200 that put the fp32 artifact 3.9e-3 from the CPU (1.6e-3 on
# the bert-base shape) with a few support changes, against 4e-6 and the same support with TF32 off, so the fp32
# graph would break its 1e-4 parity contract. TF32 stays one option away:
# ``providers=[("CUDAExecutionProvider", {"use_tf32": "1"})]`` (3.2x the fp32 throughput there; the fp16 artifact
# is faster still). See docs/deployment.md, 'GPU'.
CUDA_DEFAULT_OPTIONS: Dict[str, str] = {"use_tf32": "0"}


def cuda_available() -> bool:
    """Whether this onnxruntime build has the CUDA execution provider."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _name(p: ProviderSpec) -> str:
    return p if isinstance(p, str) else p[0]


def with_cuda_defaults(p: ProviderSpec) -> ProviderSpec:
    """The CUDA provider with :data:`CUDA_DEFAULT_OPTIONS` added under the caller's own options (which win); any
    other provider unchanged."""
    if _name(p) != "CUDAExecutionProvider":
        return p
    options = {} if isinstance(p, str) else dict(p[1])
    return ("CUDAExecutionProvider", {**CUDA_DEFAULT_OPTIONS, **options})


def normalize_providers(providers: Optional[Union[str, Sequence[ProviderSpec]]]) -> List[ProviderSpec]:
    """onnxruntime provider list from names or aliases (``"cpu"``, ``"cuda"``); unavailable providers are dropped
    with a logged warning that says what to install, and CPU is always last. The CUDA provider gets
    :data:`CUDA_DEFAULT_OPTIONS` (TF32 off) unless the caller's options name them."""
    import onnxruntime as ort

    if providers is None:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    wanted: List[ProviderSpec] = []
    for p in providers:
        if isinstance(p, str):
            wanted.append(with_cuda_defaults(_ALIASES.get(p.lower(), p)))
        else:
            wanted.append(with_cuda_defaults((_ALIASES.get(p[0].lower(), p[0]), p[1])))
    if any(_name(p) != "CPUExecutionProvider" for p in wanted):
        from splade_onnx.doctor import onnxruntime_conflict

        conflict = onnxruntime_conflict()  # onnxruntime + onnxruntime-gpu side by side: CUDA silently lost
        if conflict:
            log.warning(conflict)
    available = set(ort.get_available_providers())
    usable = [p for p in wanted if _name(p) in available]
    missing = [_name(p) for p in wanted if p not in usable]
    if missing:
        log.warning(
            "execution provider(s) %s not available in this onnxruntime (%s has %s); falling back to %s. "
            "For CUDA install onnxruntime-gpu instead of onnxruntime (see docs/deployment.md, 'GPU').",
            ", ".join(missing),
            ort.__version__,
            ", ".join(sorted(available)),
            ", ".join(_name(p) for p in usable) or "CPUExecutionProvider",
        )
    if not any(_name(p) == "CPUExecutionProvider" for p in usable):
        usable.append("CPUExecutionProvider")
    return usable


def ort_reason(e: BaseException, limit: int = 300) -> str:
    """onnxruntime's load error without its C++ source location, so the reason itself fits in a message."""
    msg = " ".join(str(e).split())
    msg = re.sub(r"/\S+\.(?:cc|h|cpp):\d+ \S+?\(.*?\) ", "", msg)
    return msg if len(msg) <= limit else msg[: limit // 3] + " ... " + msg[-(2 * limit) // 3 :]


def create_session(
    model_path: str,
    *,
    providers: Optional[Union[str, Sequence[ProviderSpec]]] = None,
    threads: Optional[int] = None,
    basic_optimization: bool = False,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``model_path``; a graph that cannot be loaded raises
    :class:`~splade_onnx.errors.ArtifactError` with onnxruntime's reason.

    ``basic_optimization`` loads at ``ORT_ENABLE_BASIC`` (constant folding only): for graphs that were already
    optimised at export, so no load time is spent on fusions. The CPU memory arena stays on (without it every run
    page-faults a fresh logits buffer: splade-tiny at 32 x 256 ran at 34 docs/s without, 59 with, same 270 MB peak);
    ``SPLADE_ONNX_CPU_ARENA=0`` turns it off.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if basic_optimization:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.enable_cpu_mem_arena = bool(int(os.environ.get("SPLADE_ONNX_CPU_ARENA", "1")))
    if threads:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model_path, so, providers=normalize_providers(providers))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf types
        raise ArtifactError(
            f"onnxruntime cannot load the graph ({type(e).__name__}: {ort_reason(e)}); "
            "the file is truncated or corrupt, or needs a newer onnxruntime: re-export or re-download the "
            "artifact (or upgrade onnxruntime)",
            model_path,
        ) from e


def session_device(session: Any) -> str:
    """``"cuda"`` when the session's first provider is CUDA, else ``"cpu"``."""
    provs = session.get_providers()
    return "cuda" if provs and provs[0] == "CUDAExecutionProvider" else "cpu"


def run_bound(
    session: Any, feeds: Dict[str, np.ndarray], output_name: str, device: Optional[str] = None, device_id: int = 0
) -> np.ndarray:
    """``session.run([output_name], feeds)[0]`` through an IO binding: each call gets its own binding (so threads
    can share the session); inputs are bound from numpy, the output is allocated on ``device`` and copied to the
    host once."""
    device = device or session_device(session)
    binding = session.io_binding()
    for name, arr in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(arr))
    binding.bind_output(output_name, device, device_id)
    binding.synchronize_inputs()
    session.run_with_iobinding(binding)
    binding.synchronize_outputs()
    return binding.copy_outputs_to_cpu()[0]


class SpladeSession:
    """The onnxruntime session of a fused SPLADE graph, checked against its manifest: feeds in, the ``[rows, vocab]``
    weights out (through an IO binding when enabled: by default on CUDA)."""

    def __init__(
        self,
        model_path: str,
        manifest: Manifest,
        *,
        providers: Optional[Union[str, Sequence[ProviderSpec]]] = None,
        threads: Optional[int] = None,
        io_binding: Optional[bool] = None,
    ) -> None:
        # Exported artifacts store onnxruntime's optimised graph (manifest extra.optimization): load them at "basic"
        # and never spend load time on fusions; older artifacts keep onnxruntime's default.
        sess = create_session(
            model_path,
            providers=providers,
            threads=threads,
            basic_optimization=bool((manifest.extra or {}).get("optimization")),
        )
        outs = sess.get_outputs()
        names = [o.name for o in outs]
        if names != [OUTPUT_NAME]:
            raise ArtifactError(
                f"graph outputs {names}, expected one output {OUTPUT_NAME!r}: this is not a fused SPLADE graph "
                "(a plain MLM ONNX? use `splade-onnx export` or `splade-onnx fuse`)",
                model_path,
            )
        shape = outs[0].shape
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != manifest.vocab_size):
            raise ArtifactError(
                f"graph output shape {shape} does not match the manifest's vocab_size {manifest.vocab_size}: "
                "model.onnx and splade_onnx.json are from different exports; re-export the artifact",
                model_path,
            )
        self.input_names: List[str] = [i.name for i in sess.get_inputs()]
        missing = [n for n in manifest.inputs if n not in self.input_names]
        if missing:
            raise ArtifactError(
                f"graph lacks inputs {missing} named in the manifest; re-export the artifact", model_path
            )
        self.session = sess
        self.vocab_size = manifest.vocab_size
        self.pad_id = manifest.pad_token_id
        self.device = session_device(sess)
        self.io_binding = (self.device == "cuda") if io_binding is None else bool(io_binding)

    @property
    def providers(self) -> List[str]:
        """Execution providers of the session, in priority order."""
        return list(self.session.get_providers())

    def run(self, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        """One onnxruntime run -> the ``[rows, vocab]`` weights on the host."""
        if self.io_binding:
            return run_bound(self.session, feeds, OUTPUT_NAME, self.device)
        return self.session.run([OUTPUT_NAME], feeds)[0]

    def run_sequences(
        self, sequences: Sequence[Sequence[int]], *, batch_size: int, budget_bytes: int
    ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Token-id sequences through :func:`~splade_onnx.encode.batching.run_sequences`: ``(positions, rows)``
        per run, under the logits budget."""
        return run_sequences(
            self.run,
            sequences,
            vocab_size=self.vocab_size,
            pad_id=self.pad_id,
            batch_size=batch_size,
            budget_bytes=budget_bytes,
            token_type_ids="token_type_ids" in self.input_names,
        )
