"""What the policy node may send to the robot: clipped, rate-limited, or a hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def per_dimension(values, size: int, name: str) -> np.ndarray:
    """(size,) limits from one value for every dimension or one per dimension."""
    values = np.asarray(values, float)
    if values.size == 1:
        return np.full(size, float(values[0]))
    if values.shape != (size,):
        raise ValueError(
            f"{name} has {values.size} values; this checkpoint's actions have {size} (or give one for all)"
        )
    return values


@dataclass
class ActionLimiter:
    low: np.ndarray  # (A,) lowest value per action dimension
    high: np.ndarray  # (A,) highest value per action dimension
    max_rate: float  # largest change per second of any arm dimension (the gripper is exempt)
    gripper_open: float = -1.0

    def __post_init__(self):
        self.low, self.high = np.asarray(self.low, float), np.asarray(self.high, float)
        if self.low.shape != self.high.shape or np.any(self.low > self.high):
            raise ValueError(
                f"action limits must be two equal-length lists with low <= high; got {self.low}, {self.high}"
            )
        if self.max_rate <= 0:
            raise ValueError(f"max_action_rate must be > 0, got {self.max_rate}")
        self.last: np.ndarray | None = None

    def hold(self) -> np.ndarray:
        """No end-effector motion; the gripper keeps its last command (a held object stays held).
        It is what was sent, so the next limited action ramps from it."""
        action = np.zeros_like(self.low)
        action[-1] = self.last[-1] if self.last is not None else self.gripper_open
        self.last = np.clip(action, self.low, self.high)
        return self.last.copy()

    def limit(self, action: np.ndarray, dt: float) -> np.ndarray:
        """Clip to the limits, then bound each arm dimension's change since the last action."""
        action = np.clip(action, self.low, self.high)
        if self.last is not None:
            step = self.max_rate * dt
            action[:-1] = np.clip(action[:-1], self.last[:-1] - step, self.last[:-1] + step)
        self.last = action.copy()
        return action

    def reset(self) -> None:
        self.last = None
