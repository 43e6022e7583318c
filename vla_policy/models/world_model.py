"""UniVLA-style interleaved world model: from [context(v_t), a_t..a_t+H-1] predict v_t+H.

The backbone sees the interleaved sequence [context tokens | action tokens | future queries] under
a block-causal mask (actions see the context, the future queries see both). Each future query
predicts one camera's pooled visual latent H steps ahead. Its distance to the latent actually
observed then is the `surprise` the ROS layer publishes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WorldModelHead(nn.Module):
    def __init__(self, dim: int, action_dim: int, chunk: int, cameras: int):
        super().__init__()
        self.action_in = nn.Linear(action_dim, dim)
        self.action_position = nn.Parameter(torch.randn(chunk, dim) * 0.02)
        self.future_queries = nn.Parameter(torch.randn(cameras, dim) * 0.02)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.chunk, self.cameras = chunk, cameras

    def suffix(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """(B, H, A) -> suffix tokens (B, H + C, D) and their block starts (H + C,) for make_attn_mask."""
        b = actions.shape[0]
        tokens = torch.cat([self.action_in(actions) + self.action_position, self.future_queries.expand(b, -1, -1)], 1)
        ar = torch.zeros(self.chunk + self.cameras, dtype=torch.long, device=actions.device)
        ar[0] = ar[self.chunk] = 1  # actions form one block, future queries the next
        return tokens, ar

    def predict(self, suffix_out: Tensor) -> Tensor:
        """(B, H + C, D) backbone output -> (B, C, D) predicted future latents (L2-normalised)."""
        return F.normalize(self.out(suffix_out[:, self.chunk :]), dim=-1)


def surprise(predicted: Tensor, observed: Tensor) -> Tensor:
    """(B, C, D) normalised latents -> (B,) mean cosine distance in [0, 2]."""
    return (1 - (predicted * F.normalize(observed, dim=-1)).sum(-1)).mean(-1)
