"""The proprio vector the model reads: configured observation keys concatenated, some derived
(a continuous 6D orientation from the quaternion), some composed of others where an observation
lacks them whole (a robot's messages give Meta-World's `agent_pos` in parts). Used alike by
training data and run time."""

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


# Proprio keys a sim observes whole and a robot publishes in parts: name -> the keys concatenated.
# agent_pos is Meta-World's obs[:4] (LeRobot's state): the hand's xyz (eef_pose) and the gripper
# opening (joint_states' one gripper joint).
COMPOSED_PROPRIO = {"agent_pos": ("eef_pos", "gripper_qpos")}


def proprio_sources(keys: tuple[str, ...], composed: bool = False) -> set[str]:
    """The observation keys that the proprio keys are read or derived from; with `composed`, the
    parts of the composed ones instead (what a robot's messages must provide)."""
    sources = set()
    for k in keys:
        if k in DERIVED_PROPRIO:
            sources.add(DERIVED_PROPRIO[k][0])
        elif composed and k in COMPOSED_PROPRIO:
            sources.update(COMPOSED_PROPRIO[k])
        else:
            sources.add(k)
    return sources


def _read(obs: dict, key: str):
    if key in DERIVED_PROPRIO:
        source, derive = DERIVED_PROPRIO[key]
        return derive(obs[source])
    if key not in obs and key in COMPOSED_PROPRIO:
        return np.concatenate([np.asarray(obs[part], dtype=np.float64) for part in COMPOSED_PROPRIO[key]], axis=-1)
    return obs[key]


def proprio_from_obs(obs: dict, keys: tuple[str, ...]) -> np.ndarray:
    """(..., P) float32: the configured proprio keys concatenated in order (derived ones computed,
    composed ones read whole or put together from their parts)."""
    unavailable = [k for k in keys if not any(proprio_sources((k,), parts) <= obs.keys() for parts in (False, True))]
    missing = sorted(proprio_sources(tuple(unavailable)) - obs.keys())
    if missing:
        raise KeyError(f"observation is missing proprio key(s) {missing}; it has {sorted(obs)}")
    return np.concatenate([np.asarray(_read(obs, k), dtype=np.float32) for k in keys], axis=-1)
