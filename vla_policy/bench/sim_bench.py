"""`vla bench sim`: env steps/s with 0, 1, 2 cameras and demo episodes/s, on one core by default."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from sim.env import EnvConfig, SimEnv
from sim.expert_policy import ExpertPolicy

CAMERA_SETS = {0: (), 1: ("agentview",), 2: ("agentview", "wrist")}


def pin_to_one_core() -> int | None:
    """Pin this process (and the renderer's threads) to a single core; returns it."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def steps_per_second(task: str, cameras: tuple, image_size: int, steps: int, quality: str) -> float:
    """Expert-driven steps (so the scene is busy, as in collection), reset time excluded."""
    with SimEnv(EnvConfig(task=task, cameras=cameras, image_size=image_size, render_quality=quality)) as env:
        policy = ExpertPolicy(env)
        done, seed, elapsed = 0, 0, 0.0
        while done < steps:
            obs = env.reset(seed=seed)
            policy.reset()
            seed += 1
            start = time.perf_counter()
            for _ in range(env.horizon):
                obs, _, terminated, truncated, _ = env.step(policy.select_action(obs))
                done += 1
                if terminated or truncated or done >= steps:
                    break
            elapsed += time.perf_counter() - start
    return done / elapsed


def demo_episodes_per_second(task: str, image_size: int, episodes: int) -> dict:
    from vla_policy.data.collect import collect

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.hdf5"
        start = time.perf_counter()
        summary = collect(task, episodes, out, workers=1, config=EnvConfig(task=task, image_size=image_size))
        elapsed = time.perf_counter() - start
    return {
        "episodes": summary.kept,
        "seconds": elapsed,
        "episodes_per_s": summary.kept / elapsed,
        "mean_steps": summary.steps / max(1, summary.kept),
    }


def bench_sim(
    task: str = "tabletop",
    image_size: int = 128,
    steps: int = 300,
    episodes: int = 5,
    quality: str = "fast",
    one_core: bool = True,
) -> dict:
    core = pin_to_one_core() if one_core else None
    SimEnv(EnvConfig(task=task, cameras=())).close()  # warm-up: imports, numba JIT
    result = {
        "benchmark": "sim",
        "task": task,
        "image_size": image_size,
        "render_quality": quality,
        "pinned_core": core,
        "cpu": platform.processor() or platform.machine(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "steps_per_s": {},
    }
    for n, cams in CAMERA_SETS.items():
        result["steps_per_s"][f"{n}_cameras"] = round(steps_per_second(task, cams, image_size, steps, quality), 2)
    result["demo_collection"] = demo_episodes_per_second(task, image_size, episodes)
    result["target_2_cameras_steps_per_s"] = 25
    result["meets_target"] = bool(result["steps_per_s"]["2_cameras"] >= 25)
    return result
