"""Small motion primitives shared by the scripted experts (OSC delta actions)."""

from __future__ import annotations

import numpy as np
import transforms3d

POS_SCALE = 0.05  # metres per unit action (robosuite BASIC OSC_POSE output_max)
ROT_SCALE = 0.5  # radians per unit action
OPEN, CLOSE = -1.0, 1.0


def yaw_of(rotation: np.ndarray) -> float:
    """Heading of a rotation matrix's x axis in the world xy plane."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def wrap(angle: float, period: float = 2 * np.pi) -> float:
    """Angle wrapped into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def rotation_action(current: np.ndarray, home: np.ndarray, home_yaw: float, yaw: float) -> np.ndarray:
    """(3,) axis-angle action turning `current` towards `home` turned to heading `yaw`."""
    desired = transforms3d.axangles.axangle2mat([0, 0, 1], yaw - home_yaw) @ home
    axis, angle = transforms3d.axangles.mat2axangle(desired @ current.T)
    return np.clip(axis * wrap(angle) / ROT_SCALE, -1.0, 1.0)


def move_action(
    eef_pos: np.ndarray,
    target: np.ndarray,
    rot: np.ndarray,
    gripper: float,
    speed: float = 1.0,
    min_speed: float = 0.0,
) -> np.ndarray:
    """(7,) action stepping the end effector towards `target` at most `speed` and at least
    `min_speed` per step (a floor keeps an approach decisive instead of creeping in)."""
    delta = (np.asarray(target) - eef_pos) / POS_SCALE
    norm = np.linalg.norm(delta)
    if norm > speed:
        delta *= speed / norm
    elif 0 < norm < min_speed:
        delta *= min_speed / norm
    return np.concatenate([delta, rot, [gripper]])
