"""Meta-World v3 tasks behind SimEnv's API, with LeRobot's evaluation protocol.

`MT1(task, seed=42)`'s first task, `_freeze_rand_vec = False` so every reset draws a new object
and goal placement. Where this differs from LeRobot: Meta-World's reset() ignores its seed and
draws the placement from numpy's global generator, so LeRobot's episodes are not reproducible
one by one; here the placement comes from the env's own generator seeded with the episode's
seed (`seeded_rand_vec`), so seed s is the same scene in every process and run; the `corner2` camera moved to
(0.75, 0.075, 0.7) as LeRobot (after Seo et al. 2022) does; a 500-step horizon; observations:
each camera's upright image, `agent_pos` (the hand's xyz and the gripper opening, Meta-World's
obs[:4], LeRobot's state), `eef_pos`, the privileged `object_state` (the rest of the 39-d
observation), the robot's state as a robot would publish it (`joint_pos`/`joint_vel` of the
Sawyer's 7 arm joints, `gripper_qpos` = [the opening], `eef_quat` the hand's orientation) and the
instruction. Action: 4-d in [-1, 1], the hand's xyz delta (x 1 cm per
step, Meta-World's action_scale) and the gripper effort (+1 closes). Rendering as LeRobot's,
with shadows and multisampling off (~7x faster on a software renderer).

State: MuJoCo's integration state (qpos, qvel, mocap) + Meta-World's last 39-d observation (it
carries the previous frame, obs[18:36], which the physics state does not) + the step count. set_state() restores a step of the episode the env was last
reset into (the task's goal and placement come from the reset's seed, as replay does).
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim.env import checked_action
from sim.suggest import did_you_mean
from sim.tasks import Goal, get_task

ACTION_DIM = 4
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
OBS_DIM = 39
CAMERA_ALIASES = {"agentview": "corner2", "wrist": "gripperPOV"}
CORNER2_POSITION = (0.75, 0.075, 0.7)
ARM_JOINTS = tuple(f"right_j{i}" for i in range(7))
# Meta-World's gripper state is one number, the pads' distance over 10 cm clipped to [0, 1] (its
# obs[3]); on joint_states it is this one joint's position.
GRIPPER_OPENING_JOINT = "gripper_opening"


class MetaWorldEnv:
    def __init__(self, config):
        import metaworld

        self.config = config
        self.task = get_task(config.task)
        self.task.check_split(config.instructions)
        self.horizon = config.horizon or self.task.horizon
        benchmark = metaworld.MT1(config.task, seed=42)
        self.env = benchmark.train_classes[config.task]()
        self.env.set_task(benchmark.train_tasks[0])
        self.env._freeze_rand_vec = False  # a new placement at every reset (LeRobot's protocol)
        self.env.seeded_rand_vec = True  # ... drawn from the env's own generator, seeded per episode
        self.env.max_path_length = max(self.env.max_path_length, self.horizon)
        self.model, self.data = self.env.model, self.env.data
        self.arm_joint_names, self.gripper_joint_names = list(ARM_JOINTS), [GRIPPER_OPENING_JOINT]
        self._arm_qpos = [self.model.joint(n).qposadr[0] for n in ARM_JOINTS]
        self._arm_qvel = [self.model.joint(n).dofadr[0] for n in ARM_JOINTS]
        corner2 = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
        self.model.cam_pos[corner2] = CORNER2_POSITION
        self.model.light_castshadow[:] = 0
        self.model.vis.quality.offsamples = 0
        self._cameras = self._resolve_cameras(config.cameras)
        size = config.image_size
        self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, size)
        self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, size)
        self.renderer = mujoco.Renderer(self.model, size, size) if self._cameras else None
        self.goal: Goal | None = None
        self.seed: int | None = None
        self.steps = 0
        self.clipped_actions = 0
        self.success = False
        self.raw_obs = np.zeros(OBS_DIM)
        self.start_positions: dict[str, np.ndarray] = {}

    # ----------------------------------------------------------------- episode
    def reset(self, seed: int | None = None, instruction: str | None = None) -> dict:
        seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self.seed = seed
        self.env.seed(seed)  # Meta-World's reset() ignores its seed argument
        raw, _ = self.env.reset()
        self.raw_obs = np.asarray(raw, dtype=np.float64)
        mujoco.mj_forward(self.model, self.data)  # reset leaves poses a step behind its last qpos
        goal_rng = np.random.default_rng([seed, 1])
        self.goal = (
            self.task.parse(instruction) if instruction else self.task.sample_goal(goal_rng, self.config.instructions)
        )
        self.steps, self.clipped_actions, self.success = 0, 0, False
        return self.observe()

    def step(self, action) -> tuple[dict, float, bool, bool, dict]:
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        action = self.validate_action(action)
        raw, reward, _, _, info = self.env.step(action.astype(np.float32))
        self.raw_obs = np.asarray(raw, dtype=np.float64)
        self.steps += 1
        self.success = bool(info["success"])
        info = {"success": self.success, "clipped_actions": self.clipped_actions, "steps": self.steps, "action": action}
        return self.observe(), float(reward), self.success, self.steps >= self.horizon, info

    def validate_action(self, action) -> np.ndarray:
        """(4,) float64 in [-1, 1]; NaN/inf or a wrong shape is an error, out-of-range is clipped and counted."""
        clipped, was_clipped = checked_action(action, ACTION_DIM)
        self.clipped_actions += was_clipped
        return clipped

    def is_success(self) -> bool:
        return self.success

    @property
    def instruction(self) -> str:
        return self.goal.instruction if self.goal else ""

    # ------------------------------------------------------------ observations
    def observe(self) -> dict:
        obs = {f"{cam}_image": self.render(cam) for cam in self.config.cameras}
        obs["agent_pos"] = self.raw_obs[:4].astype(np.float64)
        obs["eef_pos"] = self.raw_obs[:3].astype(np.float64)
        obs["eef_quat"] = self.data.body("hand").xquat.copy()  # (w, x, y, z)
        obs["gripper_qpos"] = self.raw_obs[3:4].astype(np.float64)
        obs["joint_pos"] = self.data.qpos[self._arm_qpos].copy()
        obs["joint_vel"] = self.data.qvel[self._arm_qvel].copy()
        obs["object_state"] = self.raw_obs[4:].astype(np.float64)
        obs["instruction"] = self.instruction
        return obs

    def render(self, camera: str) -> np.ndarray:
        """(H, W, 3) uint8, upright: a camera whose image-up points down in the world is turned
        180 degrees (Meta-World's corner2 is; LeRobot flips it the same way)."""
        if self.renderer is None or camera not in self._cameras:
            raise ValueError(f"camera {camera!r} is not configured; configured: {list(self.config.cameras)}")
        cam_id = self._cameras[camera]
        self.renderer.update_scene(self.data, camera=cam_id)
        image = self.renderer.render()
        return np.ascontiguousarray(image[::-1, ::-1]) if self.upside_down(cam_id) else image

    def upside_down(self, cam_id: int) -> bool:
        """Whether the camera's image-up axis (its frame's y) points below the horizon."""
        mujoco.mj_camlight(self.model, self.data)
        return float(self.data.cam_xmat[cam_id].reshape(3, 3)[2, 1]) < 0

    @property
    def eef_pos(self) -> np.ndarray:
        return self.raw_obs[:3].astype(np.float64)

    def object_position(self, name: str) -> np.ndarray:
        return self.raw_obs[4:7].astype(np.float64)

    # ------------------------------------------------------------------ state
    def _mj_size(self) -> int:
        return mujoco.mj_stateSize(self.model, STATE_SPEC)

    def get_state(self) -> np.ndarray:
        state = np.empty(self._mj_size(), dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return np.concatenate([state, self.raw_obs, [self.env.curr_path_length, self.steps]])

    def set_state(self, state: np.ndarray) -> None:
        state = np.asarray(state, dtype=np.float64)
        size = self._mj_size()
        if state.shape != (size + OBS_DIM + 2,):
            raise ValueError(f"state has shape {state.shape}; this env's states have shape ({size + OBS_DIM + 2},)")
        mujoco.mj_setState(self.model, self.data, state[:size], STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        self.raw_obs = state[size : size + OBS_DIM].copy()
        self.env._prev_obs = self.raw_obs[:18].copy()  # what Meta-World keeps after producing that observation
        self.env._last_stable_obs = self.raw_obs.copy()
        self.env.curr_path_length = int(state[-2])
        self.steps = int(state[-1])
        # Success is a function of the state (Meta-World evaluates it from the observation).
        self.success = bool(self.env.evaluate_state(self.raw_obs, np.zeros(ACTION_DIM, np.float32))[1]["success"])

    @property
    def action_spec(self) -> dict:
        """What the 4 numbers mean, read off the env (vla_policy.action_space.ActionSpace's fields):
        the hand's mocap moves action * action_scale metres per step of frame_skip physics steps;
        the last number is the gripper's effort, +1 closing."""
        scale = float(self.env.action_scale)
        return {
            "name": "ee_xyz_gripper",
            "dims": ["dx", "dy", "dz", "gripper"],
            "scale": [scale, scale, scale, 1.0],
            "dt": float(self.model.opt.timestep * self.env.frame_skip),
            "frame": "world",
        }

    @property
    def model_xml(self) -> str:
        return ""  # Meta-World builds its scene from its own XML files at construction

    # ------------------------------------------------------------------ misc
    def _resolve_cameras(self, cameras) -> dict[str, int]:
        scene = [self.model.camera(i).name for i in range(self.model.ncam)]
        valid = sorted(set(CAMERA_ALIASES) | set(scene))
        ids = {}
        for cam in cameras:
            name = CAMERA_ALIASES.get(cam, cam)
            if name not in scene:
                raise ValueError(f"unknown camera {cam!r}{did_you_mean(cam, valid)}; valid cameras: {valid}")
            ids[cam] = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        return ids

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self.env.close()

    def __enter__(self) -> "MetaWorldEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
