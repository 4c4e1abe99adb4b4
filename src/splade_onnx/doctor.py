"""Environment checks: the CPU and GPU onnxruntime wheels must not share one environment."""

from __future__ import annotations

import logging
from typing import Dict, Iterable, List, Optional

log = logging.getLogger("splade_onnx")

# Every distribution that installs the same top-level ``onnxruntime`` package.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)
GPU_INSTALL = (
    "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu tokenizers numpy "
    "huggingface-hub && pip install --no-deps splade-onnx"
)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_onnxruntime_distributions(distributions: Optional[Iterable[str]] = None) -> List[str]:
    """Names of the installed distributions that provide the ``onnxruntime`` package (sorted).

    ``distributions`` (names) replaces the real list of installed distributions, for checks and tests."""
    if distributions is None:
        from importlib.metadata import distributions as _dists

        names = [d.metadata["Name"] or "" for d in _dists()]
    else:
        names = list(distributions)
    return sorted({_norm(n) for n in names if n and _norm(n) in ORT_DISTRIBUTIONS})


def onnxruntime_conflict(distributions: Optional[Iterable[str]] = None) -> Optional[str]:
    """A message saying how to fix it when more than one onnxruntime distribution is installed, else None.

    Two of them (typically ``onnxruntime`` pulled in as a dependency next to ``onnxruntime-gpu``) overwrite each
    other's files in the one ``onnxruntime`` package; which build wins is an accident of install order, and CUDA
    silently disappears when it is the CPU one."""
    found = installed_onnxruntime_distributions(distributions)
    if len(found) < 2:
        return None
    return (
        f"several onnxruntime distributions are installed ({', '.join(found)}); they share one 'onnxruntime' "
        f"package and overwrite each other, so the CUDA provider may be missing. Fix: {GPU_INSTALL}"
    )


def doctor(distributions: Optional[Iterable[str]] = None, *, log_warning: bool = True) -> Dict[str, object]:
    """Report the runtime environment (onnxruntime build, providers, conflicts) and log what needs fixing."""
    import onnxruntime as ort

    conflict = onnxruntime_conflict(distributions)
    if conflict and log_warning:
        log.warning(conflict)
    return {
        "onnxruntime": ort.__version__,
        "providers": list(ort.get_available_providers()),
        "cuda": "CUDAExecutionProvider" in ort.get_available_providers(),
        "distributions": installed_onnxruntime_distributions(distributions),
        "conflict": conflict,
        # "1": onnxruntime's telemetry is off (splade_onnx sets it unless the environment says otherwise; it only
        # takes effect when set before onnxruntime's first import in the process)
        "ort_disable_telemetry": __import__("os").environ.get("ORT_DISABLE_TELEMETRY"),
    }
