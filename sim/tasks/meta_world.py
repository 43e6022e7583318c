"""Meta-World v3 (Yu et al. 2019; Farama's `metaworld` 3.1.1): the 50 MT50 tasks, registered.

Each task is Meta-World's own environment (sim/metaworld_env.py) under its own name
(`reach-v3`, ...), with LeRobot's evaluation protocol: one instruction per task, the task
description of LeRobot's `metaworld_mt50` dataset; a 500-step horizon; the difficulty groups of
Seo et al. 2022 ("Masked World Models", arXiv 2206.14244) that SmolVLA's MT50 table averages over.
The scripted expert is Meta-World's own policy for the task. Importing this module does not
import metaworld (it is an optional, --no-deps install).
"""

from __future__ import annotations

import numpy as np

from sim.tasks.base import Expert, Goal, Task
from sim.tasks.instructions import normalize

HORIZON = 500

# task -> (difficulty group, instruction)
MT50 = {
    "assembly-v3": ("hard", "Pick up a nut and place it onto a peg"),
    "basketball-v3": ("medium", "Dunk the basketball into the basket"),
    "bin-picking-v3": ("medium", "Grasp the puck from one bin and place it into another bin"),
    "box-close-v3": ("medium", "Grasp the cover and close the box with it"),
    "button-press-topdown-v3": ("easy", "Press a button from the top"),
    "button-press-topdown-wall-v3": ("easy", "Bypass a wall and press a button from the top"),
    "button-press-v3": ("easy", "Press a button"),
    "button-press-wall-v3": ("easy", "Bypass a wall and press a button"),
    "coffee-button-v3": ("easy", "Push a button on the coffee machine"),
    "coffee-pull-v3": ("medium", "Pull a mug from a coffee machine"),
    "coffee-push-v3": ("medium", "Push a mug under a coffee machine"),
    "dial-turn-v3": ("easy", "Rotate a dial 180 degrees"),
    "disassemble-v3": ("very_hard", "Pick a nut out of a peg"),
    "door-close-v3": ("easy", "Close a door with a revolving joint"),
    "door-lock-v3": ("easy", "Lock the door by rotating the lock clockwise"),
    "door-open-v3": ("easy", "Open a door with a revolving joint"),
    "door-unlock-v3": ("easy", "Unlock the door by rotating the lock counter-clockwise"),
    "drawer-close-v3": ("easy", "Push and close a drawer"),
    "drawer-open-v3": ("easy", "Open a drawer"),
    "faucet-close-v3": ("easy", "Rotate the faucet clockwise"),
    "faucet-open-v3": ("easy", "Rotate the faucet counter-clockwise"),
    "hammer-v3": ("medium", "Hammer a screw on the wall"),
    "hand-insert-v3": ("hard", "Insert the gripper into a hole"),
    "handle-press-side-v3": ("easy", "Press a handle down sideways"),
    "handle-press-v3": ("easy", "Press a handle down"),
    "handle-pull-side-v3": ("easy", "Pull a handle up sideways"),
    "handle-pull-v3": ("easy", "Pull a handle up"),
    "lever-pull-v3": ("easy", "Pull a lever down 90 degrees"),
    "peg-insert-side-v3": ("medium", "Insert a peg sideways"),
    "peg-unplug-side-v3": ("easy", "Unplug a peg sideways"),
    "pick-out-of-hole-v3": ("hard", "Pick up a puck from a hole"),
    "pick-place-v3": ("hard", "Pick and place a puck to a goal"),
    "pick-place-wall-v3": ("very_hard", "Pick a puck, bypass a wall and place the puck"),
    "plate-slide-back-side-v3": ("easy", "Get a plate from the cabinet sideways"),
    "plate-slide-back-v3": ("easy", "Get a plate from the cabinet"),
    "plate-slide-side-v3": ("easy", "Slide a plate into a cabinet sideways"),
    "plate-slide-v3": ("easy", "Slide a plate into a cabinet"),
    "push-back-v3": ("hard", "Push the puck to a goal"),
    "push-v3": ("hard", "Push the puck to a goal"),
    "push-wall-v3": ("medium", "Bypass a wall and push a puck to a goal"),
    "reach-v3": ("easy", "Reach a goal position"),
    "reach-wall-v3": ("easy", "Bypass a wall and reach a goal"),
    "shelf-place-v3": ("very_hard", "Pick and place a puck onto a shelf"),
    "soccer-v3": ("medium", "Kick a soccer into the goal"),
    "stick-pull-v3": ("very_hard", "Grasp a stick and pull a box with the stick"),
    "stick-push-v3": ("very_hard", "Grasp a stick and push a box using the stick"),
    "sweep-into-v3": ("medium", "Sweep a puck into a hole"),
    "sweep-v3": ("medium", "Sweep a puck off the table"),
    "window-close-v3": ("easy", "Push and close a window"),
    "window-open-v3": ("easy", "Push and open a window"),
}
DIFFICULTIES = ("easy", "medium", "hard", "very_hard")
# metaworld.MT10's task list
MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
GROUPS = {"mt10": MT10, "mt50": tuple(MT50)} | {
    f"metaworld-{d}": tuple(t for t, (g, _) in MT50.items() if g == d) for d in DIFFICULTIES
}


class MetaWorldExpert(Expert):
    """Meta-World's scripted policy for the task, on the env's raw 39-d observation."""

    def reset(self) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.policy = ENV_POLICY_MAP[self.env.task.name]()

    def act(self) -> np.ndarray:
        return np.clip(np.asarray(self.policy.get_action(self.env.raw_obs), dtype=np.float64), -1.0, 1.0)

    def select_action(self, obs: dict | None = None) -> np.ndarray:
        action = self.act()
        if self.noise_std > 0:
            action[:3] += self.rng.normal(0.0, self.noise_std, size=3)
        return np.clip(action, -1.0, 1.0)


class MetaWorldTask(Task):
    env_type = "metaworld"
    horizon = HORIZON
    action_dim = 4  # hand xyz delta + gripper

    def __init__(self, name: str):
        self.name = name
        self.group, self.instruction = MT50[name]
        self.description = f"Meta-World {name} ({self.group.replace('_', ' ')})"

    def make_scene(self, **kwargs):
        raise TypeError("Meta-World tasks are Meta-World's own environments: build them with sim.env.make_env")

    def instructions(self, split: str = "train") -> list[str]:
        """One per task, for every split: the benchmark has no paraphrases."""
        self.check_split(split)
        return [self.instruction]

    def parse(self, instruction: str) -> Goal:
        if normalize(instruction) != normalize(self.instruction):
            raise ValueError(f"task {self.name!r} knows one instruction: {self.instruction!r}")
        return Goal(skill=self.name, instruction=self.instruction, target=self.name)

    def is_success(self, env, goal: Goal) -> bool:
        return env.success

    def make_expert(self, env, goal: Goal, noise_std: float, rng: np.random.Generator) -> Expert:
        return MetaWorldExpert(env=env, goal=goal, noise_std=noise_std, rng=rng)

    def acted_object(self, env, start_positions) -> str | None:
        return None  # one task, no named object among others


def register_all(tasks: dict) -> None:
    for name in MT50:
        tasks[name] = MetaWorldTask(name)
