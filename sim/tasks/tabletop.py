"""The tabletop language family: four coloured cubes; the instruction decides what is right.

Skills: `pick` (lift the named cube), `stack` (put one named cube on another),
`push` (push the named cube to the robot's left or right). `tabletop` mixes all
three. The same scene under a different instruction needs different behaviour,
so a policy that ignores language fails. Held-out paraphrases use templates that
never appear in training data, for evaluation only.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from sim.tasks.base import Goal, Task, register_task
from sim.tasks.experts import GraspExpert, PushExpert
from sim.tasks.instructions import normalize
from sim.tasks.objects import CUBE_COLORS, CUBE_HALF

COLORS = tuple(CUBE_COLORS)
DIRECTIONS = ("left", "right")
TEMPLATES = {
    "pick": {
        "train": ["pick up the {c} cube", "lift the {c} block"],
        "heldout": ["grab the {c} cube and raise it"],
    },
    "stack": {
        "train": ["put the {c} cube on the {o} cube", "stack the {c} block on top of the {o} block"],
        "heldout": ["place the {c} block onto the {o} one"],
    },
    "push": {
        "train": ["push the {c} cube to the {d}", "slide the {c} block to the {d}"],
        "heldout": ["nudge the {c} cube towards the {d} side"],
    },
}
PICK_HEIGHT = 0.05  # cube centre this far above its resting height
PUSH_ZONE_Y = 0.15  # |y| beyond which a pushed cube counts (cubes start within |y| <= 0.10)
STACK_XY_TOLERANCE = 0.025


def _goals(skill: str, split: str) -> list[Goal]:
    goals = []
    for template in TEMPLATES[skill][split]:
        if skill == "stack":
            for c, o in permutations(COLORS, 2):
                goals.append(Goal("stack", template.format(c=c, o=o), target=c, place_on=o))
        elif skill == "push":
            for c in COLORS:
                for d in DIRECTIONS:
                    goals.append(Goal("push", template.format(c=c, d=d), target=c, direction=d))
        else:
            goals += [Goal(skill, template.format(c=c), target=c) for c in COLORS]
    return goals


class ColorCubesTask(Task):
    """Base of the family; `skills` says which skills a registered task samples from."""

    skills: tuple[str, ...] = ()
    object_names = COLORS

    def __init__(self):
        self._by_split = {
            split: [g for skill in self.skills for g in _goals(skill, split)] for split in ("train", "heldout")
        }
        self._by_split["all"] = self._by_split["train"] + self._by_split["heldout"]
        self._by_text = {g.instruction: g for g in self._by_split["all"]}

    def make_scene(self, control_freq: int = 20, seed: int = 0):
        from sim.tasks.scene import ColorCubesScene, scene_kwargs

        return ColorCubesScene(**scene_kwargs(control_freq, seed))

    def instructions(self, split: str = "train") -> list[str]:
        self.check_split(split)
        return [g.instruction for g in self._by_split[split]]

    def parse(self, instruction: str) -> Goal:
        text = normalize(instruction)
        if text not in self._by_text:
            examples = "; ".join(self.instructions("train")[:: max(1, len(self._by_text) // 6)])
            raise ValueError(
                f"task {self.name!r} does not know the instruction {instruction!r}. "
                f"It knows {len(self._by_text)} instructions, e.g.: {examples} "
                f"(`vla tasks --instructions` lists them all)"
            )
        return self._by_text[text]

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
