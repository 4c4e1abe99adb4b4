"""The torch reference: ``w[v] = max over real tokens t of act(logit[t, v])`` computed with transformers."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """SPLADE's activation with torch's own log1p, as the model cards write it."""
    if activation == "log1p_relu":
        return torch.log1p(torch.relu(x))
    if activation == "log1p_log1p_relu":
        return torch.log1p(torch.log1p(torch.relu(x)))
    raise ValueError(f"unknown activation {activation!r}")


@torch.no_grad()
def splade_reference(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    activation: str = "log1p_relu",
    pooling: str = "max",
    zeroed_token_ids: Sequence[int] = (),
    batch_size: int = 16,
) -> np.ndarray:
    """Dense ``[len(texts), vocab]`` float32 SPLADE weights, exactly as the model cards compute them.

    Texts are batched in input order with right padding, so every batch mixes lengths and has padding.
    """
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        logits = model(**enc).logits.float()  # [B, S, V]
        mask = enc["attention_mask"].unsqueeze(-1).to(logits.dtype)
        act = activate(logits, activation) * mask
        w = act.max(dim=1).values if pooling == "max" else act.sum(dim=1)
        if len(zeroed_token_ids):
            w[:, list(zeroed_token_ids)] = 0
        out.append(w.cpu().numpy().astype(np.float32))
    return np.concatenate(out, axis=0)
