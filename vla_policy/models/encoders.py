"""Vision and proprioception encoders (text lives in text.py)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vla_policy.models.layers import Transformer


class ConvPatchStem(nn.Module):
    """Patchify with a small strided conv stack instead of one linear patch projection: the same
    (S/p)^2 tokens as a ViT, but far more sample-efficient on small robot datasets."""

    def __init__(self, dim: int, patch_size: int):
        super().__init__()
        if patch_size not in (4, 8, 16):
            raise ValueError(f"patch_size must be 4, 8 or 16, got {patch_size}")
        layers, channels = [], 3
        for i in range({4: 2, 8: 3, 16: 4}[patch_size]):
            out = dim if i == {4: 2, 8: 3, 16: 4}[patch_size] - 1 else min(dim, 32 * 2**i)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(1, out), nn.GELU()]
            channels = out
        self.net = nn.Sequential(*layers[:-2])  # no norm/activation after the last conv

    def forward(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, N, D) patch tokens."""
        return self.net(images * 2.0 - 1.0).flatten(2).transpose(1, 2)


class VisionEncoder(nn.Module):
    """Shared-weight ViT over each camera, plus a learned camera embedding per camera."""

    def __init__(self, dim: int, heads: int, layers: int, image_size: int, patch_size: int, cameras: int):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.tokens_per_camera = (image_size // patch_size) ** 2
        self.stem = ConvPatchStem(dim, patch_size)
        self.position = nn.Parameter(torch.randn(self.tokens_per_camera, dim) * 0.02)
        self.camera = nn.Parameter(torch.randn(cameras, dim) * 0.02)
        self.transformer = Transformer(dim, heads, layers)

    def forward(self, images: Tensor, camera_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, C, 3, S, S) -> tokens (B, C*N, D), mask (B, C*N); a missing camera's tokens are masked."""
        b, c = images.shape[:2]
        x = self.stem(images.flatten(0, 1)) + self.position  # (B*C, N, D)
        x = self.transformer(x).view(b, c, self.tokens_per_camera, -1) + self.camera[None, :, None]
        if camera_mask is None:
            camera_mask = torch.ones(b, c, dtype=torch.bool, device=images.device)
        mask = camera_mask[:, :, None].expand(b, c, self.tokens_per_camera)
        return x.flatten(1, 2), mask.flatten(1)


class ProprioEncoder(nn.Sequential):
    """(B, P) normalised proprioception -> (B, 1, D) one token."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, proprio: Tensor) -> Tensor:
        return super().forward(proprio)[:, None]
