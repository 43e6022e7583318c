"""mp4 writing with imageio/ffmpeg."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 20) -> Path:
    """Write (H, W, 3) uint8 frames as an H.264 mp4 (sizes padded to even numbers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=2) as writer:
        for frame in frames:
            h, w = frame.shape[:2]
            writer.append_data(np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0))))
    return path
