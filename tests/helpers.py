"""Build small random-init checkpoints offline from transformers configs (no hub access needed)."""

from __future__ import annotations

import os
import shutil

import torch


def make_random_checkpoint(
    dest: str, config, tokenizer_src: str, *, seed: int = 0, head_bias_shift: float = 0.0
) -> str:
    """Save a random-init ``AutoModelForMaskedLM`` for ``config`` plus a tokenizer copied from ``tokenizer_src``."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForMaskedLM.from_config(config).eval()
    if head_bias_shift:
        dec = model.get_output_embeddings()
        with torch.no_grad():
            dec.bias.add_(head_bias_shift)
    os.makedirs(dest, exist_ok=True)
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(tokenizer_src).save_pretrained(dest)
    for name in ("tokenizer.json",):
        src = os.path.join(tokenizer_src, name)
        if os.path.isfile(src) and not os.path.isfile(os.path.join(dest, name)):
            shutil.copy(src, dest)
    return dest
