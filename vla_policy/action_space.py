"""What a checkpoint's action numbers mean physically: frame, per-step scale, control period.

A vla_stack action is normalised: each dimension in [-1, 1] per control step of `dt` seconds.
`ActionSpace` turns it into physical commands (m/s, rad/s, a gripper position) and back, so a
robot driver that steps at another rate gets the same motion, and a round trip is exact.
Checkpoints carry it in meta.json (`action_space`); older ones get it from their env_args.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EE_DELTA_GRIPPER = "ee_delta_gripper"  # end-effector position + axis-angle delta (6), gripper (1)
EE_XYZ_GRIPPER = "ee_xyz_gripper"  # end-effector position delta (3), gripper (1): Meta-World's Sawyer
CARTESIAN = (EE_DELTA_GRIPPER, EE_XYZ_GRIPPER)


@dataclass(frozen=True)
class ActionSpace:
    name: str  # EE_DELTA_GRIPPER, or joint_position for joint-space checkpoints
    dims: tuple[str, ...]  # one name per action dimension
    scale: tuple[float, ...]  # physical size of a normalised 1.0, per dimension (m, rad per step)
    dt: float  # seconds per control step of the training data
    frame: str = "robot0_base"  # the frame deltas are expressed in
    gripper_open: float = 0.04  # gripper position command (m, per finger) at action -1
    gripper_closed: float = 0.0  # ... and at action +1

    def __post_init__(self):
        if len(self.dims) != len(self.scale):
            raise ValueError(f"action space {self.name!r}: {len(self.dims)} dims but {len(self.scale)} scales")
        if self.dt <= 0:
            raise ValueError(f"action space {self.name!r}: dt must be > 0, got {self.dt}")

    @property
    def size(self) -> int:
        return len(self.dims)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ActionSpace":
        return cls(**{**d, "dims": tuple(d["dims"]), "scale": tuple(d["scale"])})

    # ------------------------------------------------- end-effector velocity
    def to_velocity(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(A,) normalised action -> (3,) m/s, (3,) rad/s in `frame` (zero for a position-only
        space), and the gripper position."""
        self._needs_cartesian()
        motion = len(self.dims) - 1  # every dimension but the gripper
        physical = np.asarray(action[:motion], float) * np.asarray(self.scale[:motion]) / self.dt
        angular = physical[3:6] if motion == 6 else np.zeros(3)
        return physical[:3], angular, self.gripper_position(float(action[-1]))

    def from_velocity(self, linear, angular, gripper_position: float, step_dt: float) -> np.ndarray:
        """The normalised action that moves at `linear`/`angular` for one robot step of `step_dt` s
        (a position-only space ignores `angular`)."""
        self._needs_cartesian()
        motion = len(self.dims) - 1
        delta = np.concatenate([np.asarray(linear, float), np.asarray(angular, float)])[:motion] * step_dt
        return np.concatenate([delta / np.asarray(self.scale[:motion]), [self.gripper_action(gripper_position)]])

    def gripper_position(self, action: float) -> float:
        return self.gripper_open + (action + 1.0) / 2.0 * (self.gripper_closed - self.gripper_open)

    def gripper_action(self, position: float) -> float:
        return 2.0 * (position - self.gripper_open) / (self.gripper_closed - self.gripper_open) - 1.0

    def _needs_cartesian(self) -> None:
        if self.name not in CARTESIAN:
            raise ValueError(
                f"this conversion needs an end-effector action space ({', '.join(CARTESIAN)}); "
                f"the checkpoint's is {self.name!r}"
            )


def panda_osc(dt: float = 0.05) -> ActionSpace:
    """robosuite 1.5's Panda with the BASIC OSC_POSE controller (controllers/config/robots/
    default_panda.json): input [-1, 1] -> 0.05 m and 0.5 rad per step, deltas in the base frame;
    Panda fingers open at 0.04 m. tests/test_env.py checks these against the live controller."""
    return ActionSpace(
        EE_DELTA_GRIPPER,
        ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"),
        (0.05, 0.05, 0.05, 0.5, 0.5, 0.5, 1.0),
        dt,
    )


def for_env(env_args: dict) -> ActionSpace:
    """The action space of the env a dataset was collected in (its `env_args`)."""
    if "action_space" in env_args:  # the env said what its actions mean (Meta-World's does)
        return ActionSpace.from_dict(env_args["action_space"])
    env_type = env_args.get("type")
    if env_type == "vla_stack":
        return panda_osc(1.0 / env_args.get("env_kwargs", {}).get("control_freq", 20))
    raise ValueError(f"env type {env_type!r} has no known action space")


def from_meta(meta: dict) -> ActionSpace:
    """A checkpoint's action space: its own record, else the one its env implies."""
    if "action_space" in meta:
        return ActionSpace.from_dict(meta["action_space"])
    return for_env(meta.get("env_args", {}))
