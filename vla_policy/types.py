"""Plain data types shared by simulation, datasets, training and the ROS layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Episode:
    """One recorded episode; index t of every array is the step *before* action t."""

    obs: dict[str, np.ndarray]  # key -> (T, ...) e.g. agentview_image (T, H, W, 3) uint8
    actions: np.ndarray  # (T, 7) float64 in [-1, 1]
    states: np.ndarray  # (T, S) simulator states (SimEnv.get_state)
    rewards: np.ndarray  # (T,) float64
    dones: np.ndarray  # (T,) uint8, 1 on the last step
    final_state: np.ndarray  # (S,) state after the last action
    instruction: str
    task: str
    seed: int
    success: bool
    goal: dict = field(default_factory=dict)
    clipped_actions: int = 0

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass
class ActionChunk:
    """A predicted sequence of actions to be played from `start_step`, one every `dt` seconds."""

    actions: np.ndarray  # (H, A) unnormalised, in the action space below
    dt: float  # seconds between actions (the dataset's control period)
    action_space: str = "ee_delta_gripper"  # OSC end-effector delta (6) + gripper (1), each in [-1, 1]
    start_step: int = 0

    def __len__(self) -> int:
        return int(self.actions.shape[0])


@dataclass(frozen=True)
class InstructionCheck:
    """An instruction gate's decision on one instruction (vla_policy/gate.py)."""

    accepted: bool
    similarity: float  # cosine similarity to the nearest training wording(s), mean of the gate's k (1.0: no gate)
    nearest: str  # that wording ("" without a gate)
    reason: str  # "" when accepted, else "instruction not understood: ..."
