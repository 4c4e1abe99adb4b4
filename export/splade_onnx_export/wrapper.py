"""The wrap step: a Hugging Face masked-LM model wrapped so that its graph computes SPLADE weights directly.

The graph computes ``act(max over real tokens of logits)``: the MLM decoder's input is taken from the model
(decoder replaced by identity) and the decoder product is done here. For max pooling, padded rows of that
input are replaced by a copy of the text's first real token (a duplicate cannot change a max, so padding never
wins it), which is ``hidden``-wide work only, never an extra pass over ``[batch, seq, vocab]``. The bias is
added after the max (it does not depend on the token), then relu and an exact log1p run on ``[batch, vocab]``
only. Sum pooling masks the activated logits.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from splade_onnx.errors import ExportError


def log1p_exact(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + x)`` exact to rounding from ops ONNX has (it has no Log1p; ``log(1 + x)`` loses tiny x, and
    so the non-zero support): Kahan's ``log(u) * x / (u - 1)`` with ``u = 1 + x``."""
    u = 1.0 + x
    d = u - 1.0
    safe_d = torch.where(d == 0, torch.ones_like(d), d)
    return torch.where(d == 0, x, torch.log(u) * (x / safe_d))


def activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """SPLADE's activation in graph-exportable ops: ``log1p(relu(x))``, or twice log1p for
    ``log1p_log1p_relu``."""
    y = log1p_exact(torch.relu(x))
    if activation == "log1p_log1p_relu":
        y = log1p_exact(y)
    return y


def replace_module(root: nn.Module, target: nn.Module, new: nn.Module) -> None:
    """Put ``new`` where ``target`` sits among ``root``'s submodules."""
    for name, mod in root.named_modules():
        if mod is target and name:
            parent_name, _, attr = name.rpartition(".")
            setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)
            return
    msg = "the output embeddings are not among the model's modules"
    raise ExportError(msg + ": this architecture's MLM head cannot be fused")


# Vocabulary columns per head slice (see FusedSplade): [4 x 256 tokens x 2048] float32 is 8 MB, within the L3
# cache.
HEAD_CHUNK = 2048


class FusedSplade(nn.Module):
    """``(input_ids, attention_mask[, token_type_ids]) -> [batch, vocab]`` SPLADE weights."""

    def __init__(
        self,
        mlm: nn.Module,
        *,
        activation: str,
        pooling: str,
        use_token_type_ids: bool,
        zeroed_token_ids: Sequence[int] = (),
        head_chunk: int = HEAD_CHUNK,
    ) -> None:
        super().__init__()
        mlm = copy.deepcopy(mlm)
        # the eager attention pattern is the one onnxruntime's transformer optimizer fuses into Attention
        try:
            mlm.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - older transformers or a model without the switch: keep its default
            pass
        decoder = mlm.get_output_embeddings()
        if not isinstance(decoder, nn.Linear):
            raise ExportError(
                f"unsupported MLM decoder {type(decoder).__name__} (expected nn.Linear): this "
                "architecture's MLM head cannot be fused; export a BERT-, RoBERTa-, DistilBERT- or "
                "ModernBERT-style masked-LM checkpoint"
            )
        weight = decoder.weight.detach().float()  # [V, H]
        bias = decoder.bias.detach().float() if decoder.bias is not None else torch.zeros(weight.shape[0])
        replace_module(mlm, decoder, nn.Identity())
        self.mlm = mlm
        # [H, V]: the decoder product. Padding never reaches the max: padded rows of its input are replaced by
        # a copy of the text's first real token (exact, since max(S) == max(S + duplicates of a member of S)),
        # which keeps K = H for the GEMM and leaves no -1e4 outlier to wreck dynamic int8 quantisation of the
        # head input.
        self.register_buffer("w_head", weight.t().contiguous())
        # Max pooling runs the head in vocabulary slices of `head_chunk` columns, each followed by its own max
        # over tokens: the [B, S, chunk] product then stays in cache between the GEMM that writes it and the
        # max that reads it, instead of a [B, S, V] buffer streamed through memory (measured on splade-tiny, 4
        # x 256 tokens: head -17% fp32, -37% int8). Exact: the max over the whole row is the concatenation of
        # the slices' maxima. Slices are of equal width, at most head_chunk: a width of exactly 2048 floats
        # puts the rows the max reads 8 KB apart, a power-of-two stride that thrashes the cache sets
        # (measured: the 15 maxima then cost 44% more).
        vocab = weight.shape[0]
        k = -(-vocab // head_chunk)
        cuts = [round(i * vocab / k) for i in range(k + 1)]
        self.head_chunks = list(zip(cuts[:-1], cuts[1:], strict=True))
        for i, (a, b) in enumerate(self.head_chunks):
            self.register_buffer(f"w_head_{i}", weight[a:b].t().contiguous())
        self.register_buffer("bias", bias.contiguous())
        keep = torch.ones(weight.shape[0])
        if len(zeroed_token_ids):
            keep[list(zeroed_token_ids)] = 0.0
        self.register_buffer("keep", keep)
        self.has_zeroed = bool(len(zeroed_token_ids))
        self.activation = activation
        self.pooling = pooling
        self.use_token_type_ids = use_token_type_ids

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """``[batch, vocab]`` SPLADE weights of a padded batch."""
        kwargs: Dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.use_token_type_ids:
            kwargs["token_type_ids"] = token_type_ids
        h = self.mlm(**kwargs).logits  # decoder input, [B, S, H]
        if self.pooling == "max":
            real = attention_mask.unsqueeze(-1) > 0  # [B, S, 1]
            first = torch.argmax(attention_mask, dim=1)  # [B]: the first real token (right or left padding)
            h_first = torch.gather(h, 1, first.view(-1, 1, 1).expand(-1, 1, h.shape[-1]))  # [B, 1, H]
            h = torch.where(real, h, h_first)  # [B, S, H]: only H-wide work, never [B, S, V]
            maxima = []  # slice by slice: [B, V], never [B, S, V] at once
            for i in range(len(self.head_chunks)):
                maxima.append(torch.matmul(h, getattr(self, f"w_head_{i}")).max(dim=1).values)
            mx = torch.cat(maxima, dim=-1)
            w = activate(mx + self.bias, self.activation)
        else:
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            w = (activate(torch.matmul(h, self.w_head) + self.bias, self.activation) * m).sum(dim=1)
        if self.has_zeroed:
            w = w * self.keep
        return w


def uses_token_type_ids(mlm: nn.Module) -> bool:
    """Whether the model reads ``token_type_ids`` (it takes them and has more than one type)."""
    params = inspect.signature(mlm.forward).parameters
    tv = getattr(mlm.config, "type_vocab_size", 0) or 0
    return "token_type_ids" in params and tv > 1


__all__ = ["FusedSplade", "HEAD_CHUNK", "activate", "log1p_exact", "replace_module", "uses_token_type_ids"]
