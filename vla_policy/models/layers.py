"""Transformer building blocks shared by every part of the model.

`make_attn_mask` is openpi's trick: one cumulative sum over a per-token
`ar_mask` expresses prefix-LM, causal and block-causal attention alike. A token
may attend to every token whose block id is <= its own, where a block starts at
each position with ar_mask = 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def make_attn_mask(pad_mask: Tensor, ar_mask: Tensor) -> Tensor:
    """(B, N) valid-token mask and (B, N) or (N,) block starts -> (B, N, N) bool, True = may attend."""
    ar_mask = ar_mask.expand_as(pad_mask).long()
    blocks = torch.cumsum(ar_mask, dim=1)  # (B, N)
    allowed = blocks[:, None, :] <= blocks[:, :, None]  # (B, N_query, N_key)
    return allowed & pad_mask[:, None, :] & pad_mask[:, :, None] | torch.eye(
        pad_mask.shape[1], dtype=torch.bool, device=pad_mask.device
    )


class Attention(nn.Module):
    """Multi-head attention from `x` (queries) to `context` (keys/values; defaults to x)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_model {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def split(self, t: Tensor) -> Tensor:
        b, n, d = t.shape
        return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, h, N, d/h)

    def keys_values(self, context: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(context).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(
        self,
        x: Tensor,  # (B, Nq, D)
        context: Tensor | None = None,  # (B, Nk, D)
        mask: Tensor | None = None,  # (B, Nq, Nk) bool, True = attend
        cached_kv: tuple[Tensor, Tensor] | None = None,  # prefix keys/values prepended to the context's
    ) -> Tensor:
        k, v = self.keys_values(x if context is None else context)
        if cached_kv is not None:
            k, v = torch.cat([cached_kv[0], k], dim=2), torch.cat([cached_kv[1], v], dim=2)
        q = self.split(self.q(x))
        attn_mask = None if mask is None else mask[:, None]
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        b, h, n, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(b, n, h * dh))  # (B, Nq, D)


class FeedForward(nn.Sequential):
    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))


class Block(nn.Module):
    """Pre-norm self-attention + MLP block, with an optional KV prefix for cached decoding."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None, cached_kv=None) -> Tensor:
        x = x + self.attn(self.norm1(x), mask=mask, cached_kv=cached_kv)
        return x + self.ff(self.norm2(x))

    def prefix_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys/values this block's attention computes for `x` (what a later suffix attends to)."""
        return self.attn.keys_values(self.norm1(x))


class Transformer(nn.Module):
    """A stack of Blocks. `forward_prefix` + `forward_suffix` split one pass for KV caching."""

    def __init__(self, dim: int, heads: int, layers: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, ff_mult, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)

    def forward_prefix(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, list]:
        """Run the prefix; return its output and each layer's keys/values."""
        cache = []
        for block in self.blocks:
            cache.append(block.prefix_kv(x))
            x = block(x, mask)
        return self.norm(x), cache

    def forward_suffix(self, x: Tensor, cache: list, mask: Tensor | None = None) -> Tensor:
        """Suffix tokens attending to the cached prefix and (per `mask`) to each other."""
        for block, kv in zip(self.blocks, cache):
            x = block(x, mask, cached_kv=kv)
        return self.norm(x)
