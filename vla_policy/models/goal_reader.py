"""The instruction read as one of the task's goals (`model.text.condition: goal`).

Each text token is tagged by a small MLP of its own (contextual) features, the tags are max-pooled
over the tokens, and a classifier names the goal the instruction asks for, as logits over the task
grammar's goals (pick the red cube, stack the green one on the blue, ...);
everything downstream of the text (the vision encoder's condition, so the instructed keypoints
and the grounding heads, and the backbone's text token) is conditioned on the expected goal
embedding under those logits. The policy then acts on a goal, not on a wording: any wording the
reader names the goal of is followed as well as the training wordings are, and how well the reader
names the goals of words it never saw is what `vla text-probe` measures for this very reader (its
`tokens-max` reader).

Why tags and a max rather than a learned query's attention: each tag says what one word in its
context contributes ("blue", right after "atop the", is where the other cube goes) wherever the
word stands, so word orders never trained on read as their words say; a query's attention learns
where in the training orders to look. In `vla text-probe`, on the held-out words, the max read
98.5% of goals and the query 92.5% (12 training stack orders; docs/RESULTS.md). Trained by the
goal's cross-entropy (`aux.goal`) beside the action loss, which reaches it through the softmax;
`train.reader` then fits it anew on the wordings alone, the goal embeddings kept
(train/reader.py).

The price: the policy can only be asked for the goals its grammar has (the instruction gate refuses
the rest before they reach it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GoalReader(nn.Module):
    """(B, L, D) text tokens, (B, L) mask -> (B, G) goal logits and (B, D) the expected goal embedding."""

    def __init__(self, dim: int, goals: int):
        super().__init__()
        if goals < 2:
            raise ValueError(f"text.condition=goal reads the instruction as one of the task's goals; got {goals}")
        self.tag = nn.Sequential(nn.GELU(), nn.Linear(dim, dim))
        self.classify = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, goals))
        self.embed = nn.Parameter(torch.randn(goals, dim) * 0.02)  # (G, D) one vector per goal

    def forward(self, text: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        tags = self.tag(text)  # (B, L, D) what each token says in its context
        tags = tags.masked_fill(~mask[..., None], torch.finfo(tags.dtype).min)  # padding never the max
        logits = self.classify(tags.amax(1))  # (B, D) -> (B, G)
        return logits, logits.softmax(-1) @ self.embed  # (B, G), (B, D)
