"""robosuite scenes used by the tasks, with named objects and shared settings."""

from __future__ import annotations

import numpy as np
import robosuite
import transforms3d
from robosuite.environments.manipulation.lift import Lift
from robosuite.environments.manipulation.manipulation_env import ManipulationEnv
from robosuite.models.arenas import TableArena
from robosuite.models.objects import BoxObject
from robosuite.models.tasks import ManipulationTask

from sim.tasks.objects import CUBE_COLORS, CUBE_HALF


def panda_controller_config() -> dict:
    """robosuite's BASIC composite controller (OSC_POSE delta arm + gripper), Panda parts only."""
    config = robosuite.load_composite_controller_config(controller="BASIC", robot="Panda")
    config["body_parts"] = {"right": config["body_parts"]["right"]}
    return config


def scene_kwargs(control_freq: int, seed: int) -> dict:
    """robosuite settings shared by all scenes: no robosuite rendering (SimEnv renders), soft reset."""
    return dict(
        robots="Panda",
        controller_configs=panda_controller_config(),
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        hard_reset=False,
        ignore_done=True,
        horizon=10**9,
        control_freq=control_freq,
        seed=seed,
    )


class NamedObjects:
    """Mixin: `objects` maps task-level names to robosuite objects; body ids are resolved after load."""

    objects: dict

    @property
    def object_names(self) -> list[str]:
        return list(self.objects)

    def _setup_references(self):
        super()._setup_references()
        self.object_body_ids = {n: self.sim.model.body_name2id(o.root_body) for n, o in self.objects.items()}


class LiftScene(NamedObjects, Lift):
    """robosuite's Lift: one red cube near the table centre."""

    @property
    def objects(self) -> dict:
        return {"cube": self.cube}


class ColorCubesScene(NamedObjects, ManipulationEnv):
    """A table with one cube of each colour at random, well separated poses."""

    X_RANGE = (-0.12, 0.12)
    Y_RANGE = (-0.10, 0.10)
    MIN_SEPARATION = 0.085

    def __init__(self, **kwargs):
        self.table_full_size = (0.8, 0.8, 0.05)
        self.table_offset = np.array((0.0, 0.0, 0.8))
        super().__init__(**kwargs)

    def _load_model(self):
        super()._load_model()
        robot_model = self.robots[0].robot_model
        robot_model.set_base_xpos(robot_model.base_xpos_offset["table"](self.table_full_size[0]))
        arena = TableArena(table_full_size=self.table_full_size, table_offset=self.table_offset)
        arena.set_origin([0, 0, 0])
        self.cubes = {
            color: BoxObject(name=f"{color}_cube", size=[CUBE_HALF] * 3, rgba=list(rgba))
            for color, rgba in CUBE_COLORS.items()
        }
        self.model = ManipulationTask(
            mujoco_arena=arena,
            mujoco_robots=[robot_model],
            mujoco_objects=list(self.cubes.values()),
        )

    @property
    def objects(self) -> dict:
        return self.cubes

    def _reset_internal(self):
        super()._reset_internal()
        for (x, y), cube in zip(self._sample_xy(len(self.cubes)), self.cubes.values()):
            yaw = self.rng.uniform(0, 2 * np.pi)
            quat = transforms3d.euler.euler2quat(0, 0, yaw)  # (w, x, y, z), MuJoCo's order
            pos = [x, y, self.table_offset[2] + CUBE_HALF + 0.001]
            self.sim.data.set_joint_qpos(cube.joints[0], np.concatenate([pos, quat]))

    def _sample_xy(self, n: int) -> list[np.ndarray]:
        """Rejection-sample n positions at least MIN_SEPARATION apart."""
        while True:
            xy = np.stack([self.rng.uniform(*self.X_RANGE, n), self.rng.uniform(*self.Y_RANGE, n)], axis=1)
            gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(n)
            if gaps.min() >= self.MIN_SEPARATION:
                return list(xy)

    def reward(self, action=None) -> float:
        return 0.0  # SimEnv scores success from the task's goal

    def _check_success(self) -> bool:
        return False
