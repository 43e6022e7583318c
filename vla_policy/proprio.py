"""The proprio vector the model reads: configured observation keys concatenated, some derived
(a continuous 6D orientation from the quaternion). Used alike by training data and run time."""

from __future__ import annotations

import numpy as np


def quat_to_rot6d(quat_wxyz: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) quaternions -> (..., 6) the first two columns of their rotation matrices.

    Continuous over rotations (Zhou et al. 2019), unlike the quaternion itself: q and -q are the
    same rotation, and a gripper pointing down sits where the w >= 0 convention flips the sign of
    the whole quaternion at the slightest tilt."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    columns = [
        1 - 2 * (y * y + z * z),
        2 * (x * y + w * z),
        2 * (x * z - w * y),  # first column
        2 * (x * y - w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z + w * x),
    ]  # second column
    return np.stack(columns, axis=-1)


# Proprio keys computed from an observation key: name -> (source key, function).
DERIVED_PROPRIO = {"eef_rot6d": ("eef_quat", quat_to_rot6d)}


def proprio_sources(keys: tuple[str, ...]) -> set[str]:
    """The observation keys that the proprio keys are read or derived from."""
    return {DERIVED_PROPRIO[k][0] if k in DERIVED_PROPRIO else k for k in keys}


def proprio_from_obs(obs: dict, keys: tuple[str, ...]) -> np.ndarray:
    """(..., P) float32: the configured proprio keys concatenated in order (derived ones computed)."""
    missing = sorted(k for k in proprio_sources(keys) if k not in obs)
    if missing:
        raise KeyError(f"observation is missing proprio key(s) {missing}; it has {sorted(obs)}")
    parts = [DERIVED_PROPRIO[k][1](obs[DERIVED_PROPRIO[k][0]]) if k in DERIVED_PROPRIO else obs[k] for k in keys]
    return np.concatenate([np.asarray(part, dtype=np.float32) for part in parts], axis=-1)
