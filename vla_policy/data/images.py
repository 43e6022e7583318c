"""The one image preprocessing, shared by training and inference: centre-crop to a square, resize
with area averaging to the model's size, scale to [0, 1], channels first. And the one decoding of
raw camera buffers (ROS sensor_msgs/Image layout), shared by the live node and bag conversion
(which needs no torch: a policy node whose model runs on a server has none)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_CHANNEL_ORDER = {"rgb8": slice(None), "bgr8": slice(None, None, -1)}


def decode_rgb(data: bytes, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB, writable, from an rgb8/bgr8 buffer of `height` rows of `step` bytes
    (row padding honoured); ValueError saying what is wrong otherwise."""
    if encoding not in _CHANNEL_ORDER:
        raise ValueError(f"image encoding {encoding!r} is not supported; use rgb8 or bgr8")
    if height == 0 or width == 0:
        raise ValueError(f"image is empty ({height}x{width})")
    if step < width * 3:
        raise ValueError(f"image step {step} < width*3 = {width * 3}")
    if len(data) != step * height:
        raise ValueError(f"image data has {len(data)} bytes; step*height = {step * height}")
    rows = np.frombuffer(bytes(data), np.uint8).reshape(height, step)
    return rows[:, : width * 3].reshape(height, width, 3)[..., _CHANNEL_ORDER[encoding]].copy()


def preprocess_images(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, size, size) float32 in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(images)
    if x.dtype != torch.uint8 or x.shape[-1] != 3 or x.ndim < 3:
        raise ValueError(f"images must be (..., H, W, 3) uint8 RGB, got {tuple(x.shape)} {x.dtype}")
    lead, (h, w) = x.shape[:-3], x.shape[-3:-1]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side, :].reshape(-1, side, side, 3).permute(0, 3, 1, 2).float() / 255
    if side != size:
        x = F.interpolate(
            x,
            size=(size, size),
            mode="area" if side > size else "bilinear",
            align_corners=None if side > size else False,
        )
    return x.reshape(*lead, 3, size, size)
