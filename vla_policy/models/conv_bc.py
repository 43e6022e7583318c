"""The language-blind baseline: a small conv behaviour-cloning policy (robomimic-style spatial-softmax
keypoints per camera + proprio -> MLP -> action chunk, L1). It never sees the instruction, so the gap
between it and the VLA on the language family is what reading the instruction is worth."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_policy.config import ModelConfig
from vla_policy.losses import chunk_mean
from vla_policy.models.encoders import SpatialSoftmax


def _conv_trunk(keypoints: int) -> nn.Sequential:
    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.GELU()]

    return nn.Sequential(
        *block(3, 32, 2),
        *block(32, 64, 1),
        *block(64, 64, 2),
        *block(64, 64, 1),
        nn.Conv2d(64, keypoints, 1),
        SpatialSoftmax(),
    )


class ConvBCModel(nn.Module):
    """Same contract as VLAModel (compute_loss / sample_actions), text ignored."""

    def __init__(self, config: ModelConfig, proprio_dim: int, keypoints: int = 32, hidden: int = 256):
        super().__init__()
        self.config = config
        cams = len(config.vision.cameras)
        self.trunks = nn.ModuleList(_conv_trunk(keypoints) for _ in range(cams))
        self.mlp = nn.Sequential(
            nn.Linear(cams * 2 * keypoints + proprio_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, config.chunk * config.action_dim),
        )

    def _features(self, batch: dict) -> Tensor:
        images, present = batch["images"], batch["camera_mask"].float()  # (B, C, 3, S, S), (B, C)
        keys = [trunk(images[:, i] * 2 - 1) * present[:, i, None] for i, trunk in enumerate(self.trunks)]
        return torch.cat([*keys, batch["proprio"]], dim=-1)

    def _predict(self, batch: dict) -> Tensor:
        out = self.mlp(self._features(batch))
        return torch.tanh(out).view(-1, self.config.chunk, self.config.action_dim)  # (B, H, A) in [-1, 1]

    def forward(self, batch: dict) -> dict[str, Tensor]:
        return self.compute_loss(batch)

    def compute_loss(self, batch: dict) -> dict[str, Tensor]:
        err = F.l1_loss(self._predict(batch), batch["actions"], reduction="none").mean(-1)  # (B, H)
        mask = batch["action_mask"].float()
        action = chunk_mean(err, mask)
        return {"action": action, "total": action}

    @torch.no_grad()
    def sample_actions(self, batch: dict, generator: torch.Generator | None = None) -> Tensor:
        return self._predict(batch)
