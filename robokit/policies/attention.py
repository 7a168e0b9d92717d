"""Multi-head attention and dropout for the transformers, quicker than torch's on small CPU models.

`MultiheadAttention` has `torch.nn.MultiheadAttention`'s parameters, names and initialization
(`in_proj_weight`, `in_proj_bias`, `out_proj`), takes sequence-first (L, B, D) inputs and computes
the same function, so checkpoints (LeRobot's included) load unchanged. What differs is the work:

- at inference, and in training without dropout, it calls `scaled_dot_product_attention` (the
  fused kernel);
- in training with dropout, torch's path runs its "safe" softmax (an extra pass checking for
  all-masked rows) and a Bernoulli draw per attention weight; here the mask comes from
  `dropout_mask` below. On a 0.2 M-parameter ACT on one CPU thread those took about a third of a
  training step (batch 32: 84 -> 69 ms per step with this module).

`dropout` draws 15 random bits per element (two elements per 31-bit draw of the CPU generator)
instead of a Bernoulli sample per element: the drop probability is p rounded to a multiple of
1/32768, and the draw is reproducible from `torch.manual_seed` like torch's (but the masks are
not torch's). With `fast=False` both modules use torch's own draws, so that under a seed they drop
exactly what `nn.Dropout` / `nn.MultiheadAttention` drop (LeRobot's training outputs are checked
that way). On CUDA they always use torch's dropout, which is fast there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robokit.policies import onednn

_BITS = 15
_LEVELS = 1 << _BITS


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, device=None, dtype=torch.float32) -> Tensor:
    """A tensor of 0 (probability p) and 1 / (1 - p) values, from 15 random bits per element."""
    n = math.prod(shape)
    half = (n + 1) // 2
    bits = torch.empty(half, dtype=torch.int32, device=device).random_()  # bits 0-30 uniform, bit 31 zero
    threshold = round(p * _LEVELS)
    keep = torch.empty(2 * half, dtype=torch.bool, device=device)
    torch.ge(bits & (_LEVELS - 1), threshold, out=keep[:half])  # bits 0-14
    torch.ge(bits >> 16, threshold, out=keep[half:])  # bits 16-30
    return keep[:n].view(shape).to(dtype).mul_(1.0 / (1.0 - p))


def dropout(x: Tensor, p: float, training: bool, fast: bool = True) -> Tensor:
    """`F.dropout(x, p, training)` with a cheaper random mask on the CPU (unless `fast=False`)."""
    if not training or p == 0.0:
        return x
    if not fast or x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    return x * dropout_mask(x.shape, p, x.device, x.dtype)


class Dropout(nn.Module):
    """`nn.Dropout` through `dropout` above."""

    def __init__(self, p: float = 0.5, fast: bool = True):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p, self.fast = p, fast

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.fast)

    def extra_repr(self) -> str:
        return f"p={self.p}, fast={self.fast}"


class MultiheadAttention(nn.Module):
    """`nn.MultiheadAttention(dim, n_heads, dropout)` for (L, B, D) inputs, same parameters and function."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0, fast_dropout: bool = True):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim_model ({dim}) must be divisible by n_heads ({n_heads})")
        self.dim, self.n_heads, self.dropout, self.fast_dropout = dim, n_heads, dropout, fast_dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = onednn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """query (Lq, B, D), key / value (Lk, B, D), key_padding_mask (B, Lk) True where ignored -> (Lq, B, D)."""
        d, h = self.dim, self.n_heads
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key:  # self-attention: one projection for q and k
            q, k = onednn.linear(query, w[: 2 * d], b[: 2 * d]).chunk(2, dim=-1)
        else:
            q, k = onednn.linear(query, w[:d], b[:d]), onednn.linear(key, w[d : 2 * d], b[d : 2 * d])
        v = onednn.linear(value, w[2 * d :], b[2 * d :])
        lq, batch = q.shape[:2]
        lk = k.shape[0]
        # (L, B, D) -> (B, H, L, D/H)
        q, k, v = (t.reshape(t.shape[0], batch, h, d // h).permute(1, 2, 0, 3) for t in (q, k, v))
        mask = None
        if key_padding_mask is not None:
            mask = torch.zeros(batch, 1, 1, lk, dtype=q.dtype, device=q.device)
            mask.masked_fill_(key_padding_mask.view(batch, 1, 1, lk), float("-inf"))
        if self.training and self.dropout > 0.0 and self.fast_dropout and q.device.type == "cpu":
            scores = torch.matmul(q * (1.0 / math.sqrt(d // h)), k.transpose(-2, -1))
            if mask is not None:
                scores = scores + mask
            weights = torch.softmax(scores, dim=-1) * dropout_mask(scores.shape, self.dropout, q.device, q.dtype)
            out = torch.matmul(weights, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        out = out.permute(2, 0, 1, 3).reshape(lq, batch, d)
        return self.out_proj(out)
