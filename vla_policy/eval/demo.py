"""`make demo` / `vla demo`: a policy closed-loop on a language task, with a video and a summary.

Until a trained checkpoint ships, the demo policy is the scripted expert.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sim.env import EnvConfig, SimEnv
from sim.expert_policy import ExpertPolicy
from vla_policy.eval.rollout import rollout
from vla_policy.eval.video import write_video


def run_demo(task: str, episodes: int, seed: int, out: str | Path) -> int:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames: list[np.ndarray] = []
    successes = 0
    start = time.perf_counter()
    with SimEnv(EnvConfig(task=task, cameras=("agentview", "wrist"), image_size=128)) as env:
        policy = ExpertPolicy(env)

        def keep_frame(obs: dict) -> None:
            frames.append(np.concatenate([obs["agentview_image"], obs["wrist_image"]], axis=1))

        for i in range(episodes):
            ep = rollout(env, policy, seed=seed + i, record_obs=False, frame_callback=keep_frame)
            successes += ep.success
            print(f"episode {i}  seed {ep.seed}  {'SUCCESS' if ep.success else 'FAIL   '}  {len(ep):3d} steps  \"{ep.instruction}\"")
        fps = env.config.control_freq
    video = write_video(out / "demo.mp4", frames, fps=fps)
    print(f"{policy.name} on {task}: {successes}/{episodes} successful, "
          f"{time.perf_counter() - start:.0f} s, video {video}")
    return 0 if successes == episodes else 1
