"""Cross-modal attention variants: plain and Flamingo-gated cross-attention, bidirectional and
alternating co-attention (ViLBERT, Lu et al. 2019), cross-channel attention; each is a residual
layer over token sets."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vla_policy.models.layers import Attention, FeedForward


def _cross_mask(query_mask: Tensor, key_mask: Tensor) -> Tensor:
    """(B, Nq), (B, Nk) -> (B, Nq, Nk); a query with no valid key attends to all keys (no NaNs)."""
    mask = key_mask[:, None, :].expand(-1, query_mask.shape[1], -1)
    empty = ~key_mask.any(dim=1)
    return mask | empty[:, None, None]


class CrossAttention(nn.Module):
    """x attends to context (pre-norm, residual), then an MLP."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.norm_x, self.norm_c, self.norm_ff = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.ff = FeedForward(dim, ff_mult, dropout)

    def forward(self, x: Tensor, x_mask: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        """(B, Nx, D) attending to (B, Nc, D) -> (B, Nx, D)."""
        x = x + self.attn(self.norm_x(x), self.norm_c(context), _cross_mask(x_mask, context_mask))
        return x + self.ff(self.norm_ff(x))


class GatedCrossAttention(CrossAttention):
    """Flamingo's gated cross-attention: tanh gates start at 0, so the layer starts as identity and
    the pretrained/unimodal path is undisturbed until the gate learns to open."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__(dim, heads, ff_mult, dropout)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, x_mask: Tensor, context: Tensor, context_mask: Tensor) -> Tensor:
        attn = self.attn(self.norm_x(x), self.norm_c(context), _cross_mask(x_mask, context_mask))
        x = x + torch.tanh(self.attn_gate) * attn
        return x + torch.tanh(self.ff_gate) * self.ff(self.norm_ff(x))


class BidirectionalCrossAttention(nn.Module):
    """Both streams attend to each other at once (each sees the other's input, not its update)."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.a_to_b = CrossAttention(dim, heads, ff_mult, dropout)
        self.b_to_a = CrossAttention(dim, heads, ff_mult, dropout)

    def forward(self, a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.a_to_b(a, a_mask, b, b_mask), self.b_to_a(b, b_mask, a, a_mask)


class CoAttention(BidirectionalCrossAttention):
    """Alternating co-attention: a attends to b, then b attends to the updated a."""

    def forward(self, a: Tensor, a_mask: Tensor, b: Tensor, b_mask: Tensor) -> tuple[Tensor, Tensor]:
        a = self.a_to_b(a, a_mask, b, b_mask)
        return a, self.b_to_a(b, b_mask, a, a_mask)


class CrossChannelAttention(nn.Module):
    """Each channel (a camera's tokens, the text, ...) attends to the union of the other channels;
    the updates are concatenated back with a residual."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.cross = CrossAttention(dim, heads, ff_mult, dropout)

    def forward(self, channels: list[Tensor], masks: list[Tensor]) -> list[Tensor]:
        out = []
        for i, (x, m) in enumerate(zip(channels, masks)):
            others = torch.cat([c for j, c in enumerate(channels) if j != i], dim=1)
            other_masks = torch.cat([mm for j, mm in enumerate(masks) if j != i], dim=1)
            out.append(self.cross(x, m, others, other_masks))
        return out
