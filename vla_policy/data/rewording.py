"""Instructions reworded to name another object: what the grounding objectives ask with, so that
only the words (not the scene) tell which object is meant."""

from __future__ import annotations

import json
import re

from vla_policy.data.hdf5_dataset import DatasetError


def instructions_naming_each_object(instruction: str, target: str, names: tuple[str, ...]) -> list[str | None]:
    """The instruction with its target's name swapped for each object's in turn ("pick up the red
    cube" -> "... the blue cube"), in object_state order; None where the swap would be ambiguous
    (the object is already named for another role, as stack's base cube is) or the target's name
    is not in the words. The grounding objective asks where the reworded instruction's object is:
    a scene then no longer tells which object is meant, only the words do."""
    word = re.compile(rf"\b{re.escape(target)}\b")
    if not word.search(instruction):
        return [instruction if name == target else None for name in names]
    return [
        instruction
        if name == target
        else None
        if re.search(rf"\b{re.escape(name)}\b", instruction)
        else word.sub(name, instruction)
        for name in names
    ]


ROLES = ("target", "place_on")  # the goal fields that name an object: what to act on, where to put it


def named_objects(group) -> tuple[dict[str, str], tuple[str, ...]]:
    """A demo's named objects by role ({"target": "green", "place_on": "red"} for a stack) and its
    task's object names (object_state order)."""
    from sim.tasks import get_task

    goal = json.loads(group.attrs["goal"])
    names = get_task(str(group.attrs["task"])).object_names
    roles = {role: goal[role] for role in ROLES if goal.get(role)}
    for role, name in roles.items():
        if name not in names:
            raise DatasetError(f"{group.name}: goal {role} {name!r} is none of the task's objects {names}")
    if "target" not in roles:
        raise DatasetError(f"{group.name}: the goal names no target")
    return roles, names


def rewordings(
    instruction: str, roles: dict[str, str], names: tuple[str, ...], with_place: bool
) -> tuple[list[str | None], list[tuple[int, int]]]:
    """Every rewording the grounding objectives ask with: the object named in each role (the target;
    with `with_place` also the place) swapped for each object in turn. -> R*K instructions (None
    where none exists) and for each, the objects it then names as (target, place) (-1: no place)."""
    index = {role: names.index(name) for role, name in roles.items()}
    texts, objects = [], []
    for role in ROLES[: 2 if with_place else 1]:
        if role not in roles:
            texts += [None] * len(names)
            objects += [(0, -1)] * len(names)
            continue
        texts += instructions_naming_each_object(instruction, roles[role], names)
        for k in range(len(names)):
            named = index | {role: k}
            objects.append((named["target"], named.get("place_on", -1) if with_place else -1))
    return texts, objects


class WordingPool:
    """Training wordings of every goal of a task's grammar, for rewording at training time: `size`
    templates per skill drawn once (seeded) from the grammar's training split, each rendered for
    every goal of its skill. A training sample then takes its demo's goal in a random one of those
    templates, so the model never sees one fixed string per goal; a grounding rewording (the same
    template naming another object) is the pool's wording of that other goal.

    ids (G, size, L) long and mask (G, size, L) bool: the tokenised wordings, G goals in the
    grammar's order."""

    def __init__(self, task_name: str, size: int, max_tokens: int, seed: int = 0):
        import numpy as np

        from sim.tasks import get_task
        from vla_policy.models.text import tokenize

        task = get_task(task_name)
        grammar = getattr(task, "grammar", None)
        if grammar is None:
            raise DatasetError(
                f"train.reword_templates needs a task with an instruction grammar (the tabletop family); "
                f"{task_name!r} has none"
            )
        self.names = tuple(task.object_names)
        self.goals = grammar.goals()
        self._index = {self._key(g.to_dict()): i for i, g in enumerate(self.goals)}
        rng = np.random.default_rng(seed)
        templates = {s: [grammar.sample_template(s, "train", rng) for _ in range(size)] for s in grammar.skills}
        self.texts = [[grammar.render(t, goal) for t in templates[goal.skill]] for goal in self.goals]  # G x size
        ids, mask = tokenize([t for row in self.texts for t in row], max_tokens)
        self.ids = ids.view(len(self.goals), size, -1)
        self.mask = mask.view(len(self.goals), size, -1)

    @staticmethod
    def _key(goal: dict) -> tuple:
        from sim.tasks.base import GOAL_KEY

        return tuple(goal.get(k) for k in GOAL_KEY)

    def goal_index(self, goal: dict) -> int:
        """A demo's goal (its `goal` attribute) -> its row in ids."""
        key = self._key(goal)
        if key not in self._index:
            raise DatasetError(f"goal {goal} is none of the grammar's goals")
        return self._index[key]

    def naming(self, with_place: bool) -> tuple:
        """For every goal, the goals that name each object in each role in its stead (the grounding
        rewordings, as `rewordings` makes them from a recorded instruction): (G, R*K) goal rows (-1
        where no such goal exists: a cube on itself, or a role the goal lacks) and (G, R*K, 2) the
        object then named as (target, place) (-1: no place)."""
        import torch

        rows, objects = [], []
        for goal in self.goals:
            row, named = [], []
            roles = {"target": goal.target} | ({"place_on": goal.place_on} if goal.place_on else {})
            for role in ROLES[: 2 if with_place else 1]:
                for k, name in enumerate(self.names):
                    swapped = goal.to_dict() | {role: name}
                    key = self._key(swapped)
                    row.append(self._index.get(key, -1) if role in roles else -1)
                    place = swapped.get("place_on")
                    named.append(
                        (self.names.index(swapped["target"]), self.names.index(place) if with_place and place else -1)
                    )
            rows.append(row)
            objects.append(named)
        return torch.tensor(rows), torch.tensor(objects)
