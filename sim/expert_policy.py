"""The scripted expert behind the policy contract (reset / select_action)."""

from __future__ import annotations

import numpy as np

from sim.env import SimEnv


class ExpertPolicy:
    """Builds the task's expert for each episode's goal; optional action noise for diverse demos."""

    name = "expert"

    def __init__(self, env: SimEnv, noise_std: float = 0.0, follow_state: bool = False):
        """`follow_state`: re-derive the phase from the state every step (DAgger labelling)."""
        self.env = env
        self.noise_std = noise_std
        self.follow_state = follow_state
        self.expert = None

    def reset(self) -> None:
        """Call after env.reset(): the expert depends on the episode's goal and seed."""
        rng = np.random.default_rng([self.env.seed, 2])
        self.expert = self.env.task.make_expert(self.env, self.env.goal, self.noise_std, rng)
        self.expert.follow_state = self.follow_state
        self.expert.reset()

    def select_action(self, obs: dict) -> np.ndarray:
        return self.expert.select_action(obs)
