"""`make demo` / `vla demo`: the shipped policy closed-loop on its task, a video and a summary.

The default is the checkpoint committed under checkpoints/default (trained by this project; its
training config and eval report sit beside it). `--policy expert` runs the scripted expert instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sim.env import EnvConfig, make_env
from vla_policy.eval.rollout import rollout
from vla_policy.eval.video import write_video

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "default"


def run_demo(
    task: str | None,
    episodes: int,
    seed: int,
    out: str | Path,
    policy: str = "checkpoint",
    checkpoint: str | Path = SHIPPED_CHECKPOINT,
) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if policy == "checkpoint":
        import torch

        from vla_policy.eval.runner import checkpoint_env_config
        from vla_policy.policy import Policy
        from vla_policy.train.checkpoint import read_checkpoint_meta

        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
        task = task or read_checkpoint_meta(checkpoint)[2]["env_args"]["env_kwargs"]["task"]
        config = checkpoint_env_config(str(checkpoint), task, "train")
        make_policy = lambda env: Policy.from_checkpoint(checkpoint, device="auto")  # noqa: E731
        name = f"checkpoint {checkpoint}"
    elif policy == "expert":
        from sim.expert_policy import ExpertPolicy

        task = task or "tabletop"
        config = EnvConfig(task=task, cameras=("agentview", "wrist"), image_size=128)
        make_policy, name = ExpertPolicy, "scripted expert"
    else:
        raise ValueError(f"unknown demo policy {policy!r}; choose 'checkpoint' or 'expert'")
    frames: list[np.ndarray] = []
    successes = 0
    start = time.perf_counter()
    with make_env(config) as env:
        agent = make_policy(env)
        keys = [f"{c}_image" for c in config.cameras]

        def keep_frame(obs: dict) -> None:
            frames.append(np.concatenate([obs[k] for k in keys], axis=1))

        for i in range(episodes):
            ep = rollout(env, agent, seed=seed + i, record_obs=False, frame_callback=keep_frame)
            successes += ep.success
            print(
                f'episode {i}  seed {ep.seed}  {"SUCCESS" if ep.success else "FAIL   "}  {len(ep):3d} steps  "{ep.instruction}"',
                flush=True,
            )
    video = write_video(out / "demo.mp4", frames, fps=config.control_freq)
    print(f"{name} on {task}: {successes}/{episodes} successful, {time.perf_counter() - start:.0f} s, video {video}")
    return 0
