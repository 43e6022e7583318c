"""The one normalisation: proprio to zero mean / unit variance, actions to [-1, 1] by min/max.

Statistics are computed from the training dataset and stored inside the checkpoint, so a policy
can never be run with another dataset's statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EPS = 1e-6


@dataclass(frozen=True)
class NormStats:
    proprio_mean: tuple[float, ...]
    proprio_std: tuple[float, ...]
    action_min: tuple[float, ...]
    action_max: tuple[float, ...]

    @classmethod
    def compute(cls, proprio: np.ndarray, actions: np.ndarray) -> "NormStats":
        """From (N, P) proprio and (N, A) actions."""
        return cls(
            tuple(proprio.mean(0).tolist()),
            tuple(np.maximum(proprio.std(0), EPS).tolist()),
            tuple(actions.min(0).tolist()),
            tuple(actions.max(0).tolist()),
        )

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "NormStats":
        return cls(
            **{k: tuple(float(x) for x in data[k]) for k in ("proprio_mean", "proprio_std", "action_min", "action_max")}
        )

    def normalize_proprio(self, proprio: np.ndarray) -> np.ndarray:
        return (proprio - np.asarray(self.proprio_mean)) / np.asarray(self.proprio_std)

    def _action_scale(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.asarray(self.action_min), np.asarray(self.action_max)
        return (hi + lo) / 2, np.maximum((hi - lo) / 2, EPS)

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        centre, half = self._action_scale()
        return np.clip((actions - centre) / half, -1.0, 1.0)

    def unnormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        centre, half = self._action_scale()
        return np.clip(actions, -1.0, 1.0) * half + centre
