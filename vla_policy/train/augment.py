"""Batch-level image augmentation and camera dropout (training only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(images: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """DrQ-style shift: replicate-pad then crop back at a random offset. (B, C, 3, S, S)."""
    b, c, ch, s, _ = images.shape
    flat = F.pad(images.reshape(b * c, ch, s, s), (pad,) * 4, mode="replicate")  # (BC, 3, S+2p, S+2p)
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b * c, 1), device=images.device)
    grid = torch.arange(s, device=images.device)
    rows, cols = (dy + grid)[:, :, None], (dx + grid)[:, None, :]  # (BC, S, 1), (BC, 1, S)
    out = flat[torch.arange(b * c, device=images.device)[:, None, None], :, rows, cols]  # (BC, S, S, 3)
    return out.permute(0, 3, 1, 2).reshape(b, c, ch, s, s)


def jitter(images: torch.Tensor, strength: float = 0.15) -> torch.Tensor:
    """Per-image brightness and contrast jitter; hue is untouched because colours name objects."""
    shape = (*images.shape[:2], 1, 1, 1)
    brightness = 1 + (torch.rand(shape, device=images.device) * 2 - 1) * strength
    contrast = 1 + (torch.rand(shape, device=images.device) * 2 - 1) * strength
    mean = images.mean(dim=(-3, -2, -1), keepdim=True)
    return ((images - mean) * contrast + mean) * brightness


def drop_cameras(camera_mask: torch.Tensor, p: float) -> torch.Tensor:
    """Hide one random camera in a fraction p of samples (never all of them)."""
    b, c = camera_mask.shape
    if c < 2 or p <= 0:
        return camera_mask
    drop = torch.rand(b, device=camera_mask.device) < p
    which = torch.randint(0, c, (b,), device=camera_mask.device)
    mask = camera_mask.clone()
    mask[drop, which[drop]] = False
    return mask


def prepare_batch(batch: dict, augment: bool, camera_dropout: float, device: torch.device, shift_pad: int = 0) -> dict:
    """uint8 images -> [0, 1] floats (augmented when training: shifted up to `shift_pad` pixels,
    brightness/contrast jitter), hidden cameras zeroed, to device."""
    out = {k: v.to(device) for k, v in batch.items()}
    for key in ("images", "future_images"):
        images = out[key].float() / 255
        if augment and key == "images":
            images = jitter(random_shift(images, shift_pad) if shift_pad else images).clamp(0, 1)
        out[key] = images
    if augment:
        out["camera_mask"] = drop_cameras(out["camera_mask"], camera_dropout)
        out["images"] = out["images"] * out["camera_mask"][:, :, None, None, None]
    return out
