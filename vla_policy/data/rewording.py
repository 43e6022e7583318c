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
