"""RT-2/OpenVLA action tokens: 256 bins per dimension over the normalised range [-1, 1].

All H x A tokens are predicted in one parallel pass (learned query per chunk step, one
256-way classifier per dimension), not one forward pass per scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_policy.losses import chunk_mean
from vla_policy.models.heads import register_head


class ActionTokenizer:
    """Uniform bins over [-1, 1]; decode returns bin centres (round trip within half a bin)."""

    def __init__(self, bins: int = 256):
        self.bins = bins

    def encode(self, actions: Tensor) -> Tensor:
        """(..., A) in [-1, 1] -> (..., A) long in [0, bins)."""
        return ((actions.clamp(-1, 1) + 1) / 2 * self.bins).floor().long().clamp(0, self.bins - 1)

    def decode(self, tokens: Tensor) -> Tensor:
        return -1 + (tokens.float() + 0.5) * (2 / self.bins)

    @property
    def half_bin(self) -> float:
        return 1.0 / self.bins


@register_head("discrete")
class DiscreteHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        d = config.d_model
        self.chunk, self.action_dim, self.bins = config.chunk, config.action_dim, config.bins
        self.tokenizer = ActionTokenizer(config.bins)
        self.queries = nn.Parameter(torch.randn(config.chunk, d) * 0.02)
        self.logits_out = nn.Linear(d, config.action_dim * config.bins)

    def logits(self, run_suffix, batch: int) -> Tensor:
        out = run_suffix(self.queries.expand(batch, -1, -1))  # (B, H, D)
        return self.logits_out(out).view(batch, self.chunk, self.action_dim, self.bins)  # (B, H, A, bins)

    def loss(self, run_suffix, actions: Tensor, action_mask: Tensor) -> Tensor:
        logits = self.logits(run_suffix, actions.shape[0])
        target = self.tokenizer.encode(actions)
        ce = F.cross_entropy(logits.flatten(0, 2), target.flatten(), reduction="none").view(target.shape).mean(-1)
        return chunk_mean(ce, action_mask)  # (B, H) -> ()

    @torch.no_grad()
    def sample(self, run_suffix, batch: int, device, generator: torch.Generator | None = None, guide=None) -> Tensor:
        """Greedy tokens, decoded to bin centres -> (B, H, A). `guide` is not used: every token is
        predicted in one pass, none conditioned on another, so there is no sampling path to steer
        toward a committed prefix (real-time chunking's closest equivalent here is the policy
        freezing that prefix)."""
        return self.tokenizer.decode(self.logits(run_suffix, batch).argmax(-1))
