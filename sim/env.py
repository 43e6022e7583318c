"""One environment API over robosuite/MuJoCo for every task.

`SimEnv(task)` gives: `reset(seed, instruction)`, `step(action)` (gymnasium's
5-tuple), observations as a dict of numpy arrays (upright camera images, joint,
gripper and end-effector state, a privileged `object_state`, the instruction),
and `get_state()` / `set_state()` that restore a step exactly.

Action: 7-d in [-1, 1]: end-effector position delta (3), rotation delta as
axis-angle in the robot base frame (3), gripper (-1 open, +1 close), played by
robosuite's BASIC composite controller (OSC_POSE, delta input).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import mujoco
import numpy as np
import transforms3d

from sim.render import QUALITIES, CameraRenderer
from sim.suggest import did_you_mean
from sim.tasks import Goal, Task, get_task

ACTION_DIM = 7
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
GRIPPER_MEMORY = 2  # the Panda gripper controller's accumulated command, one per finger
NATIVE_RATE_HZ = 20  # the step rate robosuite's Panda speeds are taken at (the demonstrations')
# Friendly camera names -> robosuite camera names. Any other scene camera works by its own name.
CAMERA_ALIASES = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}


@dataclass(frozen=True)
class EnvConfig:
    """Everything that decides what an env looks like; stored with every dataset."""

    task: str = "lift"
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 128
    render_quality: str = "fast"
    instructions: str = "train"  # train | heldout | all
    horizon: int | None = None  # None: the task's own
    control_freq: int = 20

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EnvConfig":
        fields = json.loads(text)
        fields["cameras"] = tuple(fields["cameras"])
        return cls(**fields)


class SimEnv:
    """A task's scene with cameras, a language goal and exact state save/restore."""

    def __init__(self, config: EnvConfig = EnvConfig(), **overrides):
        config = EnvConfig(**{**asdict(config), **overrides}) if overrides else config
        self.config = config
        self.task: Task = get_task(config.task)
        self.task.check_split(config.instructions)
        if config.render_quality not in QUALITIES:
            raise ValueError(f"unknown render_quality {config.render_quality!r}; choose one of {QUALITIES}")
        if config.image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {config.image_size}")
        self.horizon = config.horizon or self.task.horizon
        # A fixed construction seed keeps the model (e.g. object sizes) identical across
        # processes; per-episode randomness comes from reseeding at reset().
        self.scene = self.task.make_scene(control_freq=config.control_freq, seed=0)
        self.model: mujoco.MjModel = self.scene.sim.model._model
        self.data: mujoco.MjData = self.scene.sim.data._data
        self._camera_ids = self._resolve_cameras(config.cameras)
        self.renderer = (
            CameraRenderer(self.model, config.image_size, config.image_size, config.render_quality)
            if config.cameras
            else None
        )
        self.robot = self.scene.robots[0]
        self.gripper = self.robot.gripper["right"]
        self.arm_joint_names = list(self.robot.robot_joints)  # the names joint_states carries
        self.gripper_joint_names = list(self.gripper.joints)
        if config.control_freq != NATIVE_RATE_HZ:
            _keep_gripper_speed_per_second(self.gripper, config.control_freq)
        self.goal: Goal | None = None
        self.seed: int | None = None
        self.steps = 0
        self.clipped_actions = 0
        self.start_positions: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------- episode
    def reset(self, seed: int | None = None, instruction: str | None = None) -> dict:
        """Start an episode. Same seed (and instruction) -> same scene and goal."""
        seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self.seed = seed
        self.scene.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        goal_rng = np.random.default_rng([seed, 1])
        self.scene.reset()
        self._sync_controllers()
        self.goal = (
            self.task.parse(instruction) if instruction else self.task.sample_goal(goal_rng, self.config.instructions)
        )
        self.steps = 0
        self.clipped_actions = 0
        self.start_positions = {name: self.object_position(name) for name in self.scene.object_names}
        return self.observe()

    def step(self, action) -> tuple[dict, float, bool, bool, dict]:
        """Apply one action; returns (obs, reward, terminated, truncated, info).

        info["action"] is the action actually applied (validated and clipped)."""
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        action = self.validate_action(action)
        self.scene.step(action)
        # robosuite's lite physics leaves body/site/camera poses one substep behind qpos;
        # recompute them so observations (and re-renders from stored states) match the state.
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self.steps += 1
        success = self.is_success()
        info = {"success": success, "clipped_actions": self.clipped_actions, "steps": self.steps, "action": action}
        return self.observe(), float(success), success, self.steps >= self.horizon, info

    def validate_action(self, action) -> np.ndarray:
        """(7,) float64 in [-1, 1]; NaN/inf or a wrong shape is an error, out-of-range is clipped and counted."""
        clipped, was_clipped = checked_action(action, ACTION_DIM)
        self.clipped_actions += was_clipped
        return clipped

    def is_success(self) -> bool:
        return bool(self.task.is_success(self, self.goal))

    @property
    def instruction(self) -> str:
        return self.goal.instruction if self.goal else ""

    # ------------------------------------------------------------ observations
    def observe(self) -> dict:
        d = self.data
        robot = self.robot
        eef_site = robot.eef_site_id["right"]
        obs = {f"{cam}_image": self.render(cam) for cam in self.config.cameras}
        obs["joint_pos"] = d.qpos[robot._ref_joint_pos_indexes].copy()
        obs["joint_vel"] = d.qvel[robot._ref_joint_vel_indexes].copy()
        obs["gripper_qpos"] = d.qpos[robot._ref_gripper_joint_pos_indexes["right"]].copy()
        obs["eef_pos"] = d.site_xpos[eef_site].copy()
        obs["eef_quat"] = transforms3d.quaternions.mat2quat(d.site_xmat[eef_site].reshape(3, 3))  # (w, x, y, z)
        obs["object_state"] = self.object_state()
        obs["instruction"] = self.instruction
        return obs

    def render(self, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 upright image from one of the configured cameras."""
        if self.renderer is None or camera not in self._camera_ids:
            raise ValueError(f"camera {camera!r} is not configured; configured: {list(self.config.cameras)}")
        return self.renderer.render(self.data, self._camera_ids[camera])

    def object_state(self) -> np.ndarray:
        """(7 * n_objects,) float64: position and (w, x, y, z) quaternion of each task object."""
        parts = []
        for name in self.scene.object_names:
            body = self.scene.object_body_ids[name]
            parts += [self.data.xpos[body], self.data.xquat[body]]
        return np.concatenate(parts) if parts else np.zeros(0)

    def object_position(self, name: str) -> np.ndarray:
        return self.data.xpos[self.scene.object_body_ids[name]].copy()

    def object_quat(self, name: str) -> np.ndarray:
        return self.data.xquat[self.scene.object_body_ids[name]].copy()

    @property
    def eef_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.robot.eef_site_id["right"]].copy()

    @property
    def eef_rotation(self) -> np.ndarray:
        return self.data.site_xmat[self.robot.eef_site_id["right"]].reshape(3, 3).copy()

    @property
    def gripper_opening(self) -> float:
        """Distance between the two finger joints (m); ~0.08 open, ~0 closed."""
        qpos = self.data.qpos[self.robot._ref_gripper_joint_pos_indexes["right"]]
        return float(qpos[0] - qpos[1])

    def is_grasping(self, name: str) -> bool:
        return bool(self.scene._check_grasp(gripper=self.gripper, object_geoms=self.scene.objects[name]))

    @property
    def table_height(self) -> float:
        return float(self.scene.table_offset[2])

    # ------------------------------------------------------------------ state
    def get_state(self) -> np.ndarray:
        """Flat float64 vector: MuJoCo integration state + the gripper's command memory."""
        size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        state = np.empty(size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        # robosuite starts the Panda gripper's memory as shape (1,), then (2,) after a step.
        gripper = np.broadcast_to(self.gripper.current_action, (GRIPPER_MEMORY,))
        return np.concatenate([state, gripper, [self.steps]])

    def set_state(self, state: np.ndarray) -> None:
        """Restore a step saved by get_state(); controllers are re-synced so replay does not drift."""
        state = np.asarray(state, dtype=np.float64)
        size = mujoco.mj_stateSize(self.model, STATE_SPEC)
        n_grip = GRIPPER_MEMORY
        if state.shape != (size + n_grip + 1,):
            raise ValueError(f"state has shape {state.shape}; this env's states have shape ({size + n_grip + 1},)")
        mujoco.mj_setState(self.model, self.data, state[:size], STATE_SPEC)
        self.gripper.current_action = state[size : size + n_grip].copy()
        self.steps = int(state[-1])
        mujoco.mj_forward(self.model, self.data)
        self._sync_controllers()

    def _sync_controllers(self) -> None:
        """Refresh each part controller's cached robot state and goal from the sim.

        robosuite leaves them stale after a reset (cached before the initial joint
        positions are set), so fresh and restored episodes would step differently;
        syncing in both places makes replay from any stored state bit-exact.
        """
        for controller in self.robot.composite_controller.part_controllers.values():
            controller.update(force=True)
            controller.reset_goal()

    @property
    def model_xml(self) -> str:
        return self.scene.sim.model.get_xml()

    # ------------------------------------------------------------------ misc
    def _resolve_cameras(self, cameras) -> dict[str, int]:
        scene_cameras = [self.model.camera(i).name for i in range(self.model.ncam)]
        valid = sorted(set(CAMERA_ALIASES) | set(scene_cameras))
        ids = {}
        for cam in cameras:
            mj_name = CAMERA_ALIASES.get(cam, cam)
            if mj_name not in scene_cameras:
                raise ValueError(f"unknown camera {cam!r}{did_you_mean(cam, valid)}; valid cameras: {valid}")
            ids[cam] = self.model.camera(mj_name).id
        return ids

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self.scene.close()

    def __enter__(self) -> "SimEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def checked_action(action, dim: int) -> tuple[np.ndarray, bool]:
    """(dim,) float64 clipped to [-1, 1], and whether it had to be; NaN/inf or a wrong shape is an error."""
    arr = np.asarray(action, dtype=np.float64)
    if arr.shape != (dim,):
        raise ValueError(f"action must have shape ({dim},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
    clipped = np.clip(arr, -1.0, 1.0)
    return clipped, not np.array_equal(clipped, arr)


def make_env(config: EnvConfig = EnvConfig(), **overrides):
    """The env for a config's task: SimEnv (robosuite scenes) or MetaWorldEnv (Meta-World's own
    environments), both with this module's API."""
    config = EnvConfig(**{**asdict(config), **overrides}) if overrides else config
    if get_task(config.task).env_type == "metaworld":
        from sim.metaworld_env import MetaWorldEnv

        return MetaWorldEnv(config)
    return SimEnv(config)


def _keep_gripper_speed_per_second(gripper, control_freq: int) -> None:
    """robosuite's Panda gripper moves a fixed fraction of its range per *policy step*, so a robot
    stepping at 12 Hz would close its fingers 40% slower in seconds than at 20 Hz; a real gripper
    does not depend on the controller's rate. Its speed per step is scaled so that the speed per
    second is the one at NATIVE_RATE_HZ (the tasks' demonstrations). At 20 Hz nothing changes."""
    base = type(gripper)
    per_step = property(lambda self: base.speed.fget(self) * NATIVE_RATE_HZ / control_freq)
    gripper.__class__ = type(f"{base.__name__}At{control_freq}Hz", (base,), {"speed": per_step})
