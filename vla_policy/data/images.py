"""The one image preprocessing, shared by training and inference: centre-crop to a square, resize
with area averaging to the model's size, scale to [0, 1], channels first."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def preprocess_images(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, size, size) float32 in [0, 1]."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.shape[-1] != 3 or x.ndim < 3:
        raise ValueError(f"images must be (..., H, W, 3) uint8 RGB, got {tuple(x.shape)} {x.dtype}")
    lead, (h, w) = x.shape[:-3], x.shape[-3:-1]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side, :].reshape(-1, side, side, 3).permute(0, 3, 1, 2).float() / 255
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="area" if side > size else "bilinear", align_corners=None if side > size else False)
    return x.reshape(*lead, 3, size, size)
