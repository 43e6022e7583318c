"""Run any policy object (reset / select_action) through one seeded episode."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sim.env import SimEnv
from vla_policy.types import Episode


class PolicyLike(Protocol):
    def reset(self) -> None: ...
    def select_action(self, obs: dict) -> np.ndarray: ...


def rollout(
    env: SimEnv,
    policy: PolicyLike,
    seed: int,
    instruction: str | None = None,
    record_obs: bool = True,
    frame_callback=None,
    labeler: PolicyLike | None = None,
) -> Episode:
    """One episode until success or the horizon; returns it recorded as an Episode.

    With a `labeler` (DAgger): `policy` acts, and the action recorded at each visited state is
    the labeler's for that state (clipped to [-1, 1]), not the one executed."""
    obs = env.reset(seed=seed, instruction=instruction)
    policy.reset()
    if labeler is not None:
        labeler.reset()
    frames: dict[str, list] = {k: [] for k, v in obs.items() if k != "instruction"}
    actions, states, rewards = [], [], []
    info = {"success": False}
    while True:
        if record_obs:
            for key in frames:
                frames[key].append(obs[key])
        if frame_callback is not None:
            frame_callback(obs)
        states.append(env.get_state())
        label = (
            None if labeler is None else np.clip(np.asarray(labeler.select_action(obs), dtype=np.float64), -1.0, 1.0)
        )
        obs, reward, terminated, truncated, info = env.step(policy.select_action(obs))
        actions.append(info["action"] if label is None else label)
        rewards.append(reward)
        if terminated or truncated:
            break
    if frame_callback is not None:
        frame_callback(obs)
    dones = np.zeros(len(actions), dtype=np.uint8)
    dones[-1] = 1
    return Episode(
        obs={k: np.stack(v) for k, v in frames.items()} if record_obs else {},
        actions=np.stack(actions),
        states=np.stack(states),
        rewards=np.asarray(rewards, dtype=np.float64),
        dones=dones,
        final_state=env.get_state(),
        instruction=env.instruction,
        task=env.config.task,
        seed=seed,
        success=bool(info["success"]),
        goal=env.goal.to_dict(),
        clipped_actions=env.clipped_actions,
    )
