"""Does a policy read which object the instruction names? An offline probe that takes seconds:
in fresh scenes, every instruction of a grasping skill is given in turn, and the first chunk's
planar motion is compared with the direction to each object. A policy that reads the object's
name heads for the named one; one that ignores it is right at chance (1 / objects).

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


def heading_agreement(policy, env: SimEnv, seeds: range | list[int], instructions: list[str]) -> dict:
    """`policy.predict_chunk(obs, instruction).actions` (H, A) with planar deltas in A[:2], run on
    each (seed, instruction); -> how often its summed planar motion heads for the named object."""
    hits = total = 0
    for seed in seeds:
        for text in instructions:
            obs = env.reset(seed=seed, instruction=text)  # the scene depends on the seed alone
            policy.reset()
            motion = np.asarray(policy.predict_chunk(obs, text).actions)[:, :2].sum(0)
            objects = {name: env.object_position(name) for name in env.scene.object_names}
            hits += heading_for(motion, env.eef_pos[:2], objects) == env.goal.target
            total += 1
    low, high = wilson_interval(hits, total)
    return {"hits": hits, "pairs": total, "rate": hits / total if total else 0.0,
            "wilson95": [round(low, 4), round(high, 4)], "chance": 1.0 / len(env.scene.object_names)}


def grounding_probe(checkpoint: str, task: str = "pick", scenes: int = 20, seed: int = 1_000_000) -> dict:
    """A checkpoint's heading agreement on `scenes` fresh scenes x every training instruction."""
    from vla_policy.eval.runner import checkpoint_env_config
    from vla_policy.policy import Policy

    env = SimEnv(checkpoint_env_config(checkpoint, task, "train"))
    try:
        instructions = env.task.instructions("train")
        result = heading_agreement(Policy.from_checkpoint(checkpoint, device="cpu"), env,
                                   range(seed, seed + scenes), instructions)
    finally:
        env.close()
    return {"checkpoint": str(checkpoint), "task": task, "scenes": scenes, "instructions": len(instructions),
            "heads_for_named_object": result}
