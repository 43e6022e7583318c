"""The instruction read as one of the task's goals (`model.text.condition: goal`).

A learned query attends over the instruction's text tokens and names the goal it asks for, as
logits over the task grammar's goals (pick the red cube, stack the green one on the blue, ...);
everything downstream of the text (the vision encoder's condition, so the instructed keypoints
and the grounding heads, and the backbone's text token) is conditioned on the expected goal
embedding under those logits. The policy then acts on a goal, not on a wording: any wording the
reader names the goal of is followed as well as the training wordings are, and how well the reader
names the goals of words it never saw is what `vla text-probe` measures for this very reader (its
`tokens` reader). Trained by the goal's cross-entropy (`aux.goal`) beside the action loss, which
reaches it through the softmax.

The price: the policy can only be asked for the goals its grammar has (the instruction gate refuses
the rest before they reach it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vla_policy.models.fusion import AttentionPool


class GoalReader(nn.Module):
    """(B, L, D) text tokens, (B, L) mask -> (B, G) goal logits and (B, D) the expected goal embedding."""

    def __init__(self, dim: int, heads: int, goals: int):
        super().__init__()
        if goals < 2:
            raise ValueError(f"text.condition=goal reads the instruction as one of the task's goals; got {goals}")
        self.pool = AttentionPool(dim, heads, 1)
        self.classify = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, goals))
        self.embed = nn.Parameter(torch.randn(goals, dim) * 0.02)  # (G, D) one vector per goal

    def forward(self, text: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.classify(self.pool(text, mask)[:, 0])  # (B, G)
        return logits, logits.softmax(-1) @ self.embed  # (B, G), (B, D)
