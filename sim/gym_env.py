"""gymnasium wrapper: `gymnasium.make("vla_stack/Lift-v0", cameras=("agentview",))` after `import sim`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim.env import ACTION_DIM, EnvConfig, SimEnv

MAX_INSTRUCTION_CHARS = 256


def _space_for(value) -> spaces.Space:
    if isinstance(value, str):
        return spaces.Text(max_length=MAX_INSTRUCTION_CHARS, charset=" abcdefghijklmnopqrstuvwxyz0123456789,.'-!?")
    if value.dtype == np.uint8:
        return spaces.Box(0, 255, shape=value.shape, dtype=np.uint8)
    return spaces.Box(-np.inf, np.inf, shape=value.shape, dtype=np.float64)


class VLAGymEnv(gym.Env):
    """gymnasium.Env over SimEnv. `options={"instruction": ...}` in reset picks the goal."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str, render_mode: str | None = None, **config):
        self.env = SimEnv(EnvConfig(task=task, **config))
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float64)
        first = self.env.reset(seed=0)
        self.observation_space = spaces.Dict({k: _space_for(v) for k, v in first.items()})
        self.metadata = {**self.metadata, "render_fps": self.env.config.control_freq}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        obs = self.env.reset(seed=seed, instruction=(options or {}).get("instruction"))
        return obs, {"goal": self.env.goal.to_dict(), "seed": seed}

    def step(self, action):
        return self.env.step(action)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        cam = self.env.config.cameras[0] if self.env.config.cameras else None
        if cam is None:
            raise ValueError("render needs at least one configured camera")
        return self.env.render(cam)

    def close(self) -> None:
        self.env.close()
