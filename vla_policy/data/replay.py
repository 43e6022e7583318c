"""`vla replay`: re-render stored states, or re-execute stored actions and check they reproduce."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sim.env import EnvConfig, SimEnv, make_env
from vla_policy.data.hdf5_dataset import DatasetError, demo_names, env_args, open_dataset, read_episode
from vla_policy.types import Episode

REPLAY_MODES = ("states", "actions")


@dataclass
class DemoReplay:
    demo: str
    steps: int
    stored_success: bool
    replayed_success: bool
    max_state_divergence: float  # max |replayed - stored| over all steps and state entries
    final_state_divergence: float
    max_pixel_error: float | None = None  # states mode: re-rendered vs stored images (0..255)

    @property
    def reproduced(self) -> bool:
        return self.replayed_success == self.stored_success


def env_for_dataset(f, path) -> SimEnv:
    args = env_args(f)
    if args.get("type") != "vla_stack":
        raise DatasetError(f"{path}: env_args type {args.get('type')!r} is not 'vla_stack'; cannot rebuild the env")
    return make_env(EnvConfig.from_json(json.dumps(args["env_kwargs"])))


def replay_states(env: SimEnv, ep: Episode, frames: list | None) -> DemoReplay:
    pixel_error = 0.0
    image_keys = [k for k in ep.obs if k.endswith("_image")]
    for t in range(len(ep)):
        env.set_state(ep.states[t])
        obs = env.observe()
        for key in image_keys:
            pixel_error = max(pixel_error, float(np.abs(obs[key].astype(np.int16) - ep.obs[key][t]).max()))
        if frames is not None:
            frames.append(np.concatenate([obs[k] for k in image_keys], axis=1))
    env.set_state(ep.final_state)
    success = env.is_success()
    return DemoReplay("", len(ep), ep.success, success, 0.0, 0.0, pixel_error if image_keys else None)


def replay_actions(env: SimEnv, ep: Episode, frames: list | None) -> DemoReplay:
    env.set_state(ep.states[0])
    divergence = 0.0
    image_keys = [k for k in ep.obs if k.endswith("_image")]
    for t in range(len(ep)):
        if t > 0:
            divergence = max(divergence, float(np.abs(env.get_state() - ep.states[t]).max()))
        if frames is not None:
            obs = env.observe()
            frames.append(np.concatenate([obs[k] for k in image_keys], axis=1))
        env.step(ep.actions[t])
    final = float(np.abs(env.get_state() - ep.final_state).max())
    return DemoReplay("", len(ep), ep.success, env.is_success(), max(divergence, final), final)


def replay(path: str | Path, mode: str, demos: list[int] | None = None, video: str | Path | None = None) -> dict:
    """Replay demos of a dataset; returns per-demo results and the reproduction rate."""
    if mode not in REPLAY_MODES:
        raise ValueError(f"unknown replay mode {mode!r}; choose one of {REPLAY_MODES}")
    frames: list | None = [] if video else None
    results: list[DemoReplay] = []
    with open_dataset(path) as f:
        names = demo_names(f)
        if demos is not None:
            missing = [i for i in demos if f"demo_{i}" not in names]
            if missing:
                raise DatasetError(f"{path}: no demo(s) {missing}; it has demo_0..demo_{len(names) - 1}")
            names = [f"demo_{i}" for i in demos]
        env = env_for_dataset(f, path)
        try:
            for name in tqdm(names, desc=f"replay ({mode})", unit="demo"):
                ep = read_episode(f["data"][name], obs_keys=None if (frames is not None or mode == "states") else [])
                env.reset(seed=ep.seed, instruction=ep.instruction)
                result = (replay_states if mode == "states" else replay_actions)(env, ep, frames)
                result.demo = name
                results.append(result)
        finally:
            env.close()
    if video and frames:
        from vla_policy.eval.video import write_video

        write_video(video, frames, fps=env.config.control_freq)
    reproduced = sum(r.reproduced for r in results)
    return {
        "path": str(path),
        "mode": mode,
        "demos": len(results),
        "success_reproduced": reproduced,
        "reproduction_rate": reproduced / len(results) if results else 0.0,
        "max_state_divergence": max((r.max_state_divergence for r in results), default=0.0),
        "per_demo": [asdict(r) | {"reproduced": r.reproduced} for r in results],
        "video": str(video) if video else None,
    }
