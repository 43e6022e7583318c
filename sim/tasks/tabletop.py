"""The tabletop language family: four coloured cubes; the instruction decides what is right.

Skills: `pick` (lift the named cube), `stack` (put one named cube on another),
`push` (push the named cube to the robot's left or right). `tabletop` mixes all
three. The same scene under a different instruction needs different behaviour,
so a policy that ignores language fails. Instructions come from a grammar (language.py) with
a training split and a held-out split whose words and word orders never occur in training.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim.tasks.base import Goal, Task, register_task
from sim.tasks.experts import GraspExpert, PushExpert
from sim.tasks.language import Grammar
from sim.tasks.objects import CUBE_COLORS, CUBE_HALF

COLORS = tuple(CUBE_COLORS)
PICK_HEIGHT = 0.05  # cube centre this far above its resting height
PUSH_ZONE_Y = 0.15  # |y| beyond which a pushed cube counts (cubes start within |y| <= 0.10)
STACK_XY_TOLERANCE = 0.025
LISTED_PER_GOAL = 3  # instructions(split) lists this many seeded wordings of every goal


class ColorCubesTask(Task):
    """Base of the family; `skills` says which skills a registered task samples from. Its
    instructions come from the grammar in sim/tasks/language.py."""

    skills: tuple[str, ...] = ()
    object_names = COLORS

    def __init__(self):
        self.grammar = Grammar(COLORS, self.skills)

    def make_scene(self, control_freq: int = 20, seed: int = 0):
        from sim.tasks.scene import ColorCubesScene, scene_kwargs

        return ColorCubesScene(**scene_kwargs(control_freq, seed))

    def instructions(self, split: str = "train") -> list[str]:
        """A fixed sample of the split's wordings, LISTED_PER_GOAL per goal (the grammar has
        thousands; `vla tasks --instructions` gives its parts and counts)."""
        self.check_split(split)
        splits = ("train", "heldout") if split == "all" else (split,)
        rng = np.random.default_rng(0)
        return [
            self.grammar.wording(goal, s, rng)
            for s in splits
            for goal in self.grammar.goals()
            for _ in range(LISTED_PER_GOAL)
        ]

    def sample_goal(self, rng: np.random.Generator, split: str = "train") -> Goal:
        """A goal drawn uniformly, then a fresh wording of it from `split` ("all": either split)."""
        self.check_split(split)
        goals = self.grammar.goals()
        goal = goals[int(rng.integers(len(goals)))]
        if split == "all":
            split = ("train", "heldout")[int(rng.integers(2))]
        return replace(goal, instruction=self.grammar.wording(goal, split, rng))

    def parse(self, instruction: str) -> Goal:
        parsed = self.grammar.parse(instruction)
        if parsed is None:
            examples = "; ".join(self.instructions("train")[:: 3 * LISTED_PER_GOAL][:6])
            raise ValueError(
                f"task {self.name!r} does not know the instruction {instruction!r}. "
                f"Its grammar words each goal many ways, e.g.: {examples} "
                f"(`vla tasks --instructions` lists the grammar's parts)"
            )
        return parsed[0]

    def is_success(self, env, goal: Goal) -> bool:
        pos = env.object_position(goal.target)
        rest_z = env.table_height + CUBE_HALF
        if goal.skill == "pick":
            return pos[2] > rest_z + PICK_HEIGHT
        if goal.skill == "push":
            sign = 1.0 if goal.direction == "left" else -1.0
            return sign * pos[1] > PUSH_ZONE_Y and pos[2] < rest_z + 0.01
        base = env.object_position(goal.place_on)
        return (
            np.linalg.norm(pos[:2] - base[:2]) < STACK_XY_TOLERANCE
            and abs(pos[2] - base[2] - 2 * CUBE_HALF) < 0.01
            and base[2] < rest_z + 0.01
            and not env.is_grasping(goal.target)
        )

    def make_expert(self, env, goal: Goal, noise_std: float, rng: np.random.Generator):
        expert_cls = PushExpert if goal.skill == "push" else GraspExpert
        return expert_cls(env=env, goal=goal, noise_std=noise_std, rng=rng)


@register_task
class PickTask(ColorCubesTask):
    name, skills, horizon = "pick", ("pick",), 200
    description = "pick up the named cube among four coloured cubes"


@register_task
class StackTask(ColorCubesTask):
    name, skills, horizon = "stack", ("stack",), 300
    description = "put one named cube on another among four coloured cubes"


@register_task
class PushTask(ColorCubesTask):
    name, skills, horizon = "push", ("push",), 250
    description = "push the named cube to the robot's left or right"


@register_task
class TabletopTask(ColorCubesTask):
    name, skills, horizon = "tabletop", ("pick", "stack", "push"), 300
    description = "the whole language family: pick, stack and push, chosen by the instruction"
