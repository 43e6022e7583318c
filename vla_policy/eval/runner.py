"""Closed-loop evaluation over seeded episodes, in parallel worker processes.

`evaluate(config, policy_spec, ...)` runs any policy that `make_policy` can build
(the scripted expert now; trained checkpoints register the same way) and returns
a report: per episode (task, instruction, seed, success, steps, inference ms,
acted-on object) and success rates with Wilson 95% intervals per task, skill
and instruction. A failing episode (an exception in the policy or env) is
reported as failed with its error; the rest of the run completes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import torch
from tqdm import tqdm

from sim.env import EnvConfig, SimEnv
from vla_policy.eval.metrics import rate_summary
from vla_policy.eval.rollout import rollout
from vla_policy.registry import Registry

POLICIES: Registry[Callable] = Registry("policy kind")  # kind -> factory(env, **spec) -> policy
register_policy = POLICIES.register
_worker: dict = {}


@register_policy("expert")
def _expert(env: SimEnv, noise_std: float = 0.0):
    from sim.expert_policy import ExpertPolicy

    return ExpertPolicy(env, noise_std)


@register_policy("checkpoint")
def _checkpoint(env: SimEnv, path: str, device: str = "cpu"):
    from vla_policy.policy import Policy

    torch.set_num_threads(1)  # one thread per worker process: workers scale, threads fight
    return Policy.from_checkpoint(path, device=device)


def checkpoint_env_config(path: str, task: str, instructions: str) -> EnvConfig:
    """The env a checkpoint was trained for (cameras, image size, control rate), on `task`."""
    from vla_policy.train.checkpoint import read_checkpoint_meta

    _, _, meta = read_checkpoint_meta(path)
    kwargs = dict(meta["env_args"]["env_kwargs"])
    kwargs.update(task=task, instructions=instructions, horizon=None)
    return EnvConfig.from_json(json.dumps(kwargs))


def make_policy(env: SimEnv, spec: dict):
    return POLICIES.get(spec.get("kind"))(env, **{k: v for k, v in spec.items() if k != "kind"})


class _TimedPolicy:
    """Wraps a policy to measure select_action latency."""

    def __init__(self, policy):
        self.policy, self.ms = policy, []

    def reset(self) -> None:
        self.policy.reset()

    def select_action(self, obs):
        start = time.perf_counter()
        action = self.policy.select_action(obs)
        self.ms.append((time.perf_counter() - start) * 1e3)
        return action


def _init(config: EnvConfig, spec: dict) -> None:
    _worker["env"] = SimEnv(config)
    _worker["policy"] = make_policy(_worker["env"], spec)


def _episode(seed: int) -> dict:
    env, policy = _worker["env"], _TimedPolicy(_worker["policy"])
    record = {"task": env.config.task, "seed": seed, "success": False, "steps": 0, "error": None}
    try:
        ep = rollout(env, policy, seed=seed, record_obs=False)
        goal = ep.goal
        acted = env.task.acted_object(env, env.start_positions)
        record.update(instruction=ep.instruction, skill=goal.get("skill"), target=goal.get("target"),
                      success=ep.success, steps=len(ep), acted_object=acted,
                      acted_on_named=acted == goal.get("target"), clipped_actions=ep.clipped_actions)
    except Exception as err:  # noqa: BLE001 - reported per episode, never lost
        record.update(instruction=env.instruction, error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(limit=5))
    ms = sorted(policy.ms)
    record["inference_ms_p50"] = round(ms[len(ms) // 2], 3) if ms else None
    return record


def evaluate(config: EnvConfig, policy_spec: dict, episodes: int, seed: int = 1_000_000, workers: int = 1) -> dict:
    """Run `episodes` seeded episodes (seed, seed+1, ...) and summarise them."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    seeds = [seed + i for i in range(episodes)]
    start = time.perf_counter()
    desc = f"eval {policy_spec.get('kind')} on {config.task}"
    if workers <= 1:
        _init(config, policy_spec)
        records = [_episode(s) for s in tqdm(seeds, desc=desc, unit="ep")]
        _worker["env"].close()
    else:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(config, policy_spec)) as pool:
            records = list(tqdm(pool.map(_episode, seeds), total=episodes, desc=desc, unit="ep"))
    elapsed = time.perf_counter() - start
    return summarize(records, config, policy_spec, elapsed, workers)


def _group_rates(records: list[dict], key: str) -> dict:
    groups = defaultdict(list)
    for r in records:
        groups[r.get(key)].append(r["success"])
    return {str(k): rate_summary(sum(v), len(v)) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def summarize(records: list[dict], config: EnvConfig, policy_spec: dict, elapsed: float, workers: int) -> dict:
    named = [r["acted_on_named"] for r in records if "acted_on_named" in r]
    return {
        "task": config.task,
        "instructions": config.instructions,
        "policy": policy_spec,
        "overall": rate_summary(sum(r["success"] for r in records), len(records)),
        "per_skill": _group_rates(records, "skill"),
        "per_instruction": _group_rates(records, "instruction"),
        "named_object": rate_summary(sum(named), len(named)),
        "errors": sum(r["error"] is not None for r in records),
        "workers": workers,
        "seconds": round(elapsed, 2),
        "episodes_per_s": round(len(records) / elapsed, 3),
        "episodes": records,
    }
