"""`lift`: robosuite Lift, for comparison with published robomimic numbers."""

from __future__ import annotations

import numpy as np

from sim.tasks.base import Goal, Task, register_task
from sim.tasks.experts import GraspExpert
from sim.tasks.instructions import normalize

TRAIN = ["lift the cube"]
HELDOUT = ["raise the red block off the table"]
LIFT_HEIGHT = 0.04  # robosuite's criterion: cube centre 4 cm above the table top


@register_task
class LiftTask(Task):
    name = "lift"
    horizon = 200
    object_names = ("cube",)
    description = "robosuite Lift: pick up the single red cube"

    def make_scene(self, control_freq: int = 20, seed: int = 0):
        from sim.tasks.scene import LiftScene, scene_kwargs

        return LiftScene(**scene_kwargs(control_freq, seed))

    def instructions(self, split: str = "train") -> list[str]:
        self.check_split(split)
        return {"train": TRAIN, "heldout": HELDOUT, "all": TRAIN + HELDOUT}[split]

    def parse(self, instruction: str) -> Goal:
        text = normalize(instruction)
        if text not in self.instructions("all"):
            raise ValueError(
                f"task 'lift' does not know the instruction {instruction!r}; valid: {self.instructions('all')}"
            )
        return Goal(skill="lift", instruction=text, target="cube")

    def is_success(self, env, goal: Goal) -> bool:
        return env.object_position("cube")[2] > env.table_height + LIFT_HEIGHT

    def make_expert(self, env, goal: Goal, noise_std: float, rng: np.random.Generator) -> GraspExpert:
        return GraspExpert(env=env, goal=goal, noise_std=noise_std, rng=rng)
