"""How far a checkpoint's grounding heads are from the objects its instruction names, over every
few steps of demos it was not trained on (`vla grounding --checkpoint ... --demos fresh.hdf5`).

The policy acts on these estimates (model.target_token: the target head's estimate of the named
object, and the place head's of the base, are tokens of its context), so a run whose estimates
are off misses what it reaches for. Each sample takes its demo's goal in a training wording (a
fixed draw of the grammar's templates, the same for every checkpoint), so two runs are compared
on the same steps and words. Errors in centimetres, per skill.
"""

from __future__ import annotations

import numpy as np
import torch

STRIDE = 3  # every third step: neighbouring steps are near copies


def _summary(errors_cm: list[float]) -> dict:
    e = np.asarray(errors_cm)
    return {
        "samples": len(e),
        "median_cm": round(float(np.median(e)), 3),
        "p90_cm": round(float(np.percentile(e, 90)), 3),
        "over_2cm": round(float(np.mean(e > 2.0)), 4),
    }


@torch.no_grad()
def grounding_error(checkpoint: str, demos_path: str, templates: int = 256, seed: int = 1234) -> dict:
    """-> {skill: {"target": summary, "place": summary (skills with a base)}} and the totals."""
    from vla_policy.data.demos import load_demos
    from vla_policy.data.rewording import WordingPool
    from vla_policy.data.windows import DemoWindows
    from vla_policy.train.augment import prepare_batch
    from vla_policy.train.checkpoint import load_checkpoint

    model, config, stats, _ = load_checkpoint(checkpoint)
    if not config.model.aux.target_position:
        raise ValueError(f"{checkpoint} has no target head (model.aux.target_position)")
    demos, env_args = load_demos(demos_path, config.model)
    pool = WordingPool(env_args["env_kwargs"]["task"], templates, config.model.text.max_tokens, seed)
    windows = DemoWindows(demos, stats, config.model.chunk, "cpu", pool)
    target = torch.tensor([pool.names.index(g.target) for g in pool.goals])  # (G,)
    place = torch.tensor([pool.names.index(g.place_on) if g.place_on else -1 for g in pool.goals])  # (G,)
    with_place = bool(config.model.aux.place_position)
    torch.manual_seed(seed)  # which template each sample takes
    errors: dict[str, dict[str, list[float]]] = {}
    steps = torch.arange(0, len(windows), STRIDE)
    for start in range(0, len(steps), 128):
        batch = prepare_batch(windows.batch(steps[start : start + 128]), False, 0.0, torch.device("cpu"))
        images, ids, mask = batch["images"], batch["text_ids"], batch["text_mask"]
        proprio = model.proprio(batch["proprio"])  # (B, 1, D)
        objects = batch["object_position"].view(len(images), -1, 3)  # (B, K, 3) dm from the gripper
        rows, goal = torch.arange(len(images)), batch["goal"]  # (B,), (B,)
        off = {"target": model.predict_target_position(images, ids, mask, proprio) - objects[rows, target[goal]]}
        if with_place:
            where = model.predict_place_position(images, ids, mask, proprio)  # (B, 3) dm
            off["place"] = where - objects[rows, place[goal].clamp(min=0)]
        for role, delta in off.items():
            cm = (delta.norm(dim=-1) * 10).tolist()  # dm -> cm
            for i, g in enumerate(goal.tolist()):
                if role == "place" and place[g] < 0:
                    continue
                errors.setdefault(pool.goals[g].skill, {}).setdefault(role, []).append(cm[i])
    report = {"checkpoint": str(checkpoint), "demos": str(demos_path), "episodes": len(demos), "every": STRIDE}
    for skill, roles in sorted(errors.items()):
        report[skill] = {role: _summary(values) for role, values in roles.items()}
    report["all"] = {
        role: _summary([v for roles in errors.values() for v in roles.get(role, [])])
        for role in ("target", "place")
        if any(role in roles for roles in errors.values())
    }
    return report
