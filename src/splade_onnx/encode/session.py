"""Running the session with onnxruntime IO binding (CUDA: inputs copied once, the output kept on the device until
one copy back), and the provider helpers of the GPU path."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

NO_CUDA_REASON = "no CUDA execution provider in this onnxruntime (no GPU lent to this task)"


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def session_device(session: Any) -> str:
    """'cuda' when the session's first provider is CUDA, else 'cpu'."""
    provs = session.get_providers()
    return "cuda" if provs and provs[0] == "CUDAExecutionProvider" else "cpu"


def run_bound(session: Any, feeds: Dict[str, np.ndarray], output_name: str, device: Optional[str] = None,
              device_id: int = 0) -> np.ndarray:
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
