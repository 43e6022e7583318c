"""Closed-loop evaluation over seeded episodes, in this process or in parallel worker processes.

`EnvRunner(config, ...).run(policy)` runs any policy: a live object with reset()/select_action()
(in this process), or a spec dict that each worker process builds for itself:
{"kind": "expert"}, {"kind": "checkpoint", "path": ...}, or {"kind": "package.module:factory"}
for a user's own policy (factory(env, **rest) -> policy).

It returns a report: per episode (task, instruction, seed, success, steps, inference ms,
acted-on object) and success rates with Wilson 95% intervals per task, skill and instruction.
An exception in the policy or env fails that episode with its error; a worker process that dies
(segfault, OOM kill) fails the episode it was running, and the rest of the run completes.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import os
import time
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from sim.env import EnvConfig, SimEnv, make_env
from sim.tasks import TASKS
from sim.tasks.base import GOAL_KEY
from vla_policy import smoothness
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
def _checkpoint(env: SimEnv, path: str, device: str = "cpu", **policy_kwargs):
    from vla_policy.policy import Policy

    torch.set_num_threads(1)  # one thread per worker process: workers scale, threads fight
    return Policy.from_checkpoint(path, device=device, **policy_kwargs)


@register_policy("remote")
def _remote(env: SimEnv, url: str, **policy_kwargs):
    from vla_policy.remote.client import RemotePolicy

    return RemotePolicy(url, **policy_kwargs)


def env_config_from_args(env_args: dict, task: str, instructions: str) -> EnvConfig:
    """The env a checkpoint was trained for (its meta's env_args: cameras, image size, control
    rate), on `task`."""
    kwargs = dict(env_args["env_kwargs"])
    kwargs.update(task=task, instructions=instructions, horizon=None)
    return EnvConfig.from_json(json.dumps(kwargs))


def checkpoint_env_config(path: str, task: str, instructions: str) -> EnvConfig:
    from vla_policy.train.checkpoint import read_checkpoint_meta

    return env_config_from_args(read_checkpoint_meta(path)[2]["env_args"], task, instructions)


def make_policy(env: SimEnv, spec: dict):
    kind = str(spec.get("kind"))
    if ":" in kind:  # "package.module:factory", a user's own policy
        module, _, name = kind.partition(":")
        factory = getattr(importlib.import_module(module), name)
    else:
        factory = POLICIES.get(kind)
    return factory(env, **{k: v for k, v in spec.items() if k != "kind"})


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


def run_episode(env: SimEnv, policy, seed: int, media_dir: str | None = None) -> dict:
    """One seeded episode of `policy` as a report record; with `media_dir`, also its video and
    action trace (<media_dir>/seed_<seed>.mp4 / .npy)."""
    timed = _TimedPolicy(policy)
    record = {"task": env.config.task, "seed": seed, "success": False, "steps": 0, "error": None}
    frames: list[np.ndarray] = []
    eef: list[np.ndarray] = []  # end-effector positions, for jerk
    keys = [f"{c}_image" for c in env.config.cameras] if media_dir is not None else []

    def keep(obs: dict) -> None:
        if "eef_pos" in obs:
            eef.append(obs["eef_pos"])
        if keys:
            frames.append(np.concatenate([obs[k] for k in keys], axis=1))

    try:
        ep = rollout(env, timed, seed=seed, record_obs=False, frame_callback=keep)
        goal = ep.goal
        acted = env.task.acted_object(env, env.start_positions)
        record.update(
            instruction=ep.instruction,
            skill=goal.get("skill"),
            target=goal.get("target"),
            success=ep.success,
            steps=len(ep),
            acted_object=acted,
            acted_on_named=acted == goal.get("target"),
            clipped_actions=ep.clipped_actions,
        )
        record.update(_goal_read(policy, env, goal))
        refusal = getattr(policy, "refusal", None)  # the policy's gate held the robot on this instruction
        if refusal is not None:
            record["refused"] = refusal.reason
        sources = getattr(policy, "sources", None)  # a chunking policy says where each action came from
        if sources is not None and len(sources) == len(ep):
            boundary, within = smoothness.action_steps(ep.actions, sources)
            record["smoothness"] = smoothness.summarize(
                boundary, within, smoothness.jerk(np.asarray(eef), 1.0 / env.config.control_freq)
            )
        if media_dir is not None:
            np.save(Path(media_dir) / f"seed_{seed}.npy", ep.actions)
    except Exception as err:  # noqa: BLE001 - reported per episode, never lost
        record.update(
            instruction=env.instruction, error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(limit=5)
        )
    if frames:
        from vla_policy.eval.video import write_video

        write_video(Path(media_dir) / f"seed_{seed}.mp4", frames, fps=env.config.control_freq)
    # Per select_action call. A chunked policy computes a chunk every replan_every calls and pops
    # the queue otherwise, so the median is a pop; the mean is the policy's cost per control step
    # and the max its slowest chunk.
    ms = sorted(timed.ms)
    record["inference_ms_p50"] = round(ms[len(ms) // 2], 3) if ms else None
    record["inference_ms_mean"] = round(sum(ms) / len(ms), 3) if ms else None
    record["inference_ms_max"] = round(ms[-1], 3) if ms else None
    return record


def _goal_read(policy, env: SimEnv, goal: dict) -> dict:
    """For a policy that reads its instruction as one of the task grammar's goals: which goal it
    read and whether that is the episode's (a failure then splits into reading and doing)."""
    grammar = getattr(env.task, "grammar", None)
    read = policy.read_goal(env.instruction) if grammar is not None and hasattr(policy, "read_goal") else None
    if read is None:
        return {}
    index, probability = read
    goals = grammar.goals()
    if len(goals) != policy.config.model.text.goals:  # trained on another task's grammar
        return {}
    read_goal = goals[index]
    return {
        "goal_read": dict(zip(GOAL_KEY, read_goal.key())),
        "goal_read_probability": round(probability, 4),
        "goal_read_right": read_goal.key() == tuple(goal.get(f) for f in GOAL_KEY),
    }


# ------------------------------------------------------------ worker side
def _init(config: EnvConfig, spec: dict, started) -> None:
    _worker["env"] = make_env(config)
    _worker["policy"] = make_policy(_worker["env"], spec)
    _worker["started"] = started


def _worker_episode(seed: int, media_dir: str | None) -> dict:
    _worker["started"][seed] = os.getpid()
    return run_episode(_worker["env"], _worker["policy"], seed, media_dir)


def _crashed(config: EnvConfig, seed: int, why: str) -> dict:
    return {
        "task": config.task,
        "seed": seed,
        "success": False,
        "steps": 0,
        "inference_ms_p50": None,
        "inference_ms_mean": None,
        "inference_ms_max": None,
        "error": f"WorkerCrashed: {why}",
    }


class EnvRunner:
    """Seeded closed-loop episodes (seed, seed + 1, ...) of one env config, summarised."""

    def __init__(
        self,
        config: EnvConfig,
        episodes: int,
        seed: int = 1_000_000,
        workers: int = 1,
        media_dir: str | Path | None = None,
    ):
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.config, self.workers = config, workers
        self.seeds = [seed + i for i in range(episodes)]
        self.media_dir = None if media_dir is None else str(media_dir)

    def run(self, policy) -> dict:
        """`policy`: a spec dict (built in each worker) or a live policy object (run here)."""
        start = time.perf_counter()
        if not isinstance(policy, dict):
            with make_env(self.config) as env:
                records = [
                    run_episode(env, policy, s, self.media_dir)
                    for s in tqdm(self.seeds, desc=self._desc(policy), unit="ep")
                ]
            return summarize(records, self.config, {"kind": type(policy).__name__}, time.perf_counter() - start, 1)
        if ":" not in str(policy.get("kind")):
            POLICIES.get(policy.get("kind"))  # a typo fails here, not in every worker
        if self.workers == 1:
            _init(self.config, policy, {})
            try:
                records = [
                    _worker_episode(s, self.media_dir) for s in tqdm(self.seeds, desc=self._desc(policy), unit="ep")
                ]
            finally:
                _worker.pop("env").close()
        else:
            records = self._in_workers(policy)
        return summarize(records, self.config, policy, time.perf_counter() - start, self.workers)

    def _desc(self, policy) -> str:
        kind = policy.get("kind") if isinstance(policy, dict) else type(policy).__name__
        return f"eval {kind} on {self.config.task}"

    def _in_workers(self, spec: dict) -> list[dict]:
        """Episodes in spawned worker processes; a process that dies costs only its own episode."""
        records: dict[int, dict] = {}
        bar = tqdm(total=len(self.seeds), desc=self._desc(spec), unit="ep")
        with mp.get_context("spawn").Manager() as manager:
            queue = list(self.seeds)
            while queue:
                broken, running = self._pass(spec, queue, self.workers, records, manager, bar)
                if broken and not running:  # died before any episode started: the policy cannot load
                    for seed in queue:
                        records.setdefault(seed, _crashed(self.config, seed, "the worker process died while starting"))
                # Each episode that was running when a worker died is re-run alone; dying again convicts it.
                for seed in running:
                    if self._pass(spec, [seed], 1, records, manager, bar)[0]:
                        records[seed] = _crashed(self.config, seed, "the worker process died during this episode")
                        bar.update(1)
                queue = [s for s in self.seeds if s not in records]
        bar.close()
        return [records[s] for s in self.seeds]

    def _pass(self, spec: dict, seeds: list[int], workers: int, records: dict, manager, bar) -> tuple[bool, list[int]]:
        """Run `seeds` in a fresh pool, filling `records`; -> (pool broke, seeds that started but did not finish)."""
        started = manager.dict()
        ctx = mp.get_context("spawn")
        broken = False
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init, initargs=(self.config, spec, started)
        ) as pool:
            futures = {pool.submit(_worker_episode, s, self.media_dir): s for s in seeds}
            for fut in as_completed(futures):
                try:
                    records[futures[fut]] = fut.result()
                    bar.update(1)
                except BrokenProcessPool:
                    broken = True
        return broken, [s for s in seeds if s in started and s not in records]


def evaluate(
    config: EnvConfig,
    policy_spec: dict,
    episodes: int,
    seed: int = 1_000_000,
    workers: int = 1,
    media_dir: str | Path | None = None,
) -> dict:
    """Run `episodes` seeded episodes (seed, seed+1, ...) of a policy spec in worker processes."""
    return EnvRunner(config, episodes, seed, workers, media_dir).run(policy_spec)


def _group_rates(records: list[dict], key: str) -> dict:
    groups = defaultdict(list)
    for r in records:
        groups[r.get(key)].append(r["success"])
    return {str(k): rate_summary(sum(v), len(v)) for k, v in sorted(groups.items(), key=lambda kv: str(kv[0]))}


def _group_word_orders(records: list[dict], task: str) -> dict | None:
    """Success per word order (the grammar frame each episode's instruction follows, e.g. "heldout
    stack: {R} the {o} {m}, {V} the {c} {n}"), for a task with an instruction grammar; else None."""
    grammar = getattr(TASKS.get(task), "grammar", None)  # a task group (mt10) has none
    if grammar is None:
        return None
    orders = [{**r, "frame": grammar.frame(r.get("instruction") or "") or "not in the grammar"} for r in records]
    return _group_rates(orders, "frame")


def _goal_read_rates(records: list[dict]) -> dict | None:
    """How often a goal-reading policy read the episode's goal, and its success when it did and
    when it did not; None for a policy that reads no goal."""
    read = [r for r in records if "goal_read_right" in r]
    if not read:
        return None
    right = [r["success"] for r in read if r["goal_read_right"]]
    wrong = [r["success"] for r in read if not r["goal_read_right"]]
    return {
        "right": rate_summary(len(right), len(read)),
        "success_when_right": rate_summary(sum(right), len(right)),
        "success_when_wrong": rate_summary(sum(wrong), len(wrong)),
    }


def skill_average(per_skill: dict) -> dict:
    """The unweighted mean of the per-skill success rates (each skill counts once, however many
    episodes the task's goal mix gave it) and the fewest episodes any skill had."""
    rates = [s["rate"] for s in per_skill.values()]
    return {
        "rate": sum(rates) / len(rates) if rates else 0.0,
        "skills": len(rates),
        "min_episodes": min((s["episodes"] for s in per_skill.values()), default=0),
    }


def summarize(records: list[dict], config: EnvConfig, policy_spec: dict, elapsed: float, workers: int) -> dict:
    named = [r["acted_on_named"] for r in records if "acted_on_named" in r]
    per_skill = _group_rates(records, "skill")
    return {
        "task": config.task,
        "instructions": config.instructions,
        "policy": policy_spec,
        "overall": rate_summary(sum(r["success"] for r in records), len(records)),
        "per_skill": per_skill,
        "skill_average": skill_average(per_skill),
        "per_instruction": _group_rates(records, "instruction"),
        "per_frame": _group_word_orders(records, config.task),
        "named_object": rate_summary(sum(named), len(named)),
        "goal_read": _goal_read_rates(records),
        "smoothness": smoothness.pooled([r["smoothness"] for r in records if r.get("smoothness")]),
        "refused": sum(bool(r.get("refused")) for r in records),  # held by the instruction gate
        "errors": sum(r["error"] is not None for r in records),
        "workers": workers,
        "seconds": round(elapsed, 2),
        "episodes_per_s": round(len(records) / elapsed, 3),
        "episodes": records,
    }
