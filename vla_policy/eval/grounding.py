"""Does a policy read which object the instruction names? An offline probe that takes seconds:
in fresh scenes, every instruction of a grasping skill is given in turn, and the first chunk's
planar motion is compared with the direction to each object. A policy that reads the object's
name heads for the named one; one that ignores it is right at chance (1 / objects). A model
trained with the grounding objective (aux.target_position) is also asked where the named object is,
and with aux.place_position where the object it goes onto is (stack: `--task stack`).

Meaningful where the first move goes to the named object (pick, stack); push approaches from
behind the cube.
"""

from __future__ import annotations

import numpy as np

from sim.env import SimEnv
from vla_policy.eval.metrics import wilson_interval


def heading_for(motion: np.ndarray, eef_xy: np.ndarray, objects: dict[str, np.ndarray]) -> str:
    """The object whose planar direction from the gripper is closest in angle to `motion` (2,)."""

    def cosine(name: str) -> float:
        to_object = objects[name][:2] - eef_xy
        return float(motion @ to_object / (np.linalg.norm(motion) * np.linalg.norm(to_object) + 1e-9))

    return max(objects, key=cosine)


def named_object_agreement(
    guess, env: SimEnv, seeds: range | list[int], instructions: list[str], role: str = "target"
) -> dict:
    """`guess(obs, instruction) -> object name`, asked on each (seed, instruction) at the episode's
    start; -> how often it is the object the instruction names in `role` (a goal field: target,
    place_on; instructions without one are skipped), with a Wilson interval."""
    hits = total = 0
    for seed in seeds:
        for text in instructions:
            obs = env.reset(seed=seed, instruction=text)  # the scene depends on the seed alone
            if getattr(env.goal, role) is None:
                continue
            hits += guess(obs, text) == getattr(env.goal, role)
            total += 1
    low, high = wilson_interval(hits, total)
    return {
        "hits": hits,
        "pairs": total,
        "rate": hits / total if total else 0.0,
        "wilson95": [round(low, 4), round(high, 4)],
        "chance": 1.0 / len(env.scene.object_names),
    }


def _objects(env: SimEnv) -> dict[str, np.ndarray]:
    return {name: env.object_position(name) for name in env.scene.object_names}


def heading_agreement(policy, env: SimEnv, seeds: range | list[int], instructions: list[str]) -> dict:
    """`policy.predict_chunk(obs, instruction).actions` (H, A) with planar deltas in A[:2]: how often
    the first chunk's summed planar motion heads for the named object."""

    def guess(obs: dict, text: str) -> str:
        policy.reset()
        motion = np.asarray(policy.predict_chunk(obs, text).actions)[:, :2].sum(0)
        return heading_for(motion, env.eef_pos[:2], _objects(env))

    return named_object_agreement(guess, env, seeds, instructions)


def head_agreement(
    policy, env: SimEnv, seeds: range | list[int], instructions: list[str], role: str = "target"
) -> dict:
    """For a model trained with the grounding objective: how often the object nearest (in the plane)
    to where its head for `role` (target: aux.target_position, place_on: aux.place_position) says the
    named object is, is that object."""
    import torch

    model = policy.model
    predict = model.predict_target_position if role == "target" else model.predict_place_position

    def guess(obs: dict, text: str) -> str:
        batch = policy.make_batch(obs, text)
        with torch.no_grad():
            predicted = (
                predict(batch["images"], batch["text_ids"], batch["text_mask"], model.proprio(batch["proprio"]))[0]
                .cpu()
                .numpy()
                / 10
            )
        where = env.eef_pos + predicted  # metres, world frame
        return min(_objects(env), key=lambda name: float(np.linalg.norm(env.object_position(name)[:2] - where[:2])))

    return named_object_agreement(guess, env, seeds, instructions, role)


def grounding_probe(checkpoint: str, task: str = "pick", scenes: int = 20, seed: int = 1_000_000) -> dict:
    """A checkpoint's heading agreement on `scenes` fresh scenes x every training instruction."""
    from vla_policy.eval.runner import checkpoint_env_config
    from vla_policy.policy import Policy

    env = SimEnv(checkpoint_env_config(checkpoint, task, "train"))
    try:
        instructions = env.task.instructions("train")
        policy = Policy.from_checkpoint(checkpoint, device="cpu")
        seeds = range(seed, seed + scenes)
        report = {
            "checkpoint": str(checkpoint),
            "task": task,
            "scenes": scenes,
            "instructions": len(instructions),
            "heads_for_named_object": heading_agreement(policy, env, seeds, instructions),
        }
        if policy.config.model.aux.target_position:
            report["target_head_finds_named_object"] = head_agreement(policy, env, seeds, instructions)
        if policy.config.model.aux.place_position and any(env.task.parse(t).place_on for t in instructions):
            report["place_head_finds_named_base"] = head_agreement(policy, env, seeds, instructions, "place_on")
    finally:
        env.close()
    return report
