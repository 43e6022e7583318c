"""Small model batches for tests."""

from __future__ import annotations

import numpy as np
import torch

from vla_policy.config import ModelConfig, load_config, merge
from vla_policy.models.text import tokenize
from vla_policy.proprio import proprio_from_obs


def tiny_model_config(**updates) -> ModelConfig:
    return merge(load_config("tiny").model, updates)


def random_batch(config: ModelConfig, batch: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    c, s = len(config.vision.cameras), config.vision.image_size
    texts = ["pick up the red cube", "push the blue cube to the left", "put the red cube on the green cube"]
    ids, mask = tokenize([texts[i % 3] for i in range(batch)], config.text.max_tokens)
    return {
        "images": torch.rand(batch, c, 3, s, s, generator=g),
        "future_images": torch.rand(batch, c, 3, s, s, generator=g),
        "camera_mask": torch.ones(batch, c, dtype=torch.bool),
        "text_ids": ids,
        "text_mask": mask,
        "proprio": torch.randn(batch, PROPRIO_DIM, generator=g),
        "actions": torch.rand(batch, config.chunk, config.action_dim, generator=g) * 2 - 1,
        "action_mask": torch.ones(batch, config.chunk, dtype=torch.bool),
    }


def random_obs(size: int = 40) -> dict:
    """One raw observation as the env gives it (uint8 HWC images, proprio arrays, instruction)."""
    rng = np.random.default_rng(0)
    return {
        "agentview_image": rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8),
        "wrist_image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
        "joint_pos": np.zeros(7),
        "gripper_qpos": np.zeros(2),
        "eef_pos": np.zeros(3),
        "eef_quat": np.array([1.0, 0, 0, 0]),
        "instruction": "pick up the red cube",
    }


def fit(model, batch: dict, loss: str, optim: torch.optim.Optimizer, steps: int) -> list[float]:
    """Optimise one named loss of `model.compute_loss` on a fixed batch; -> its value at each step."""
    values = []
    for _ in range(steps):
        value = model.compute_loss(batch)[loss]
        optim.zero_grad()
        value.backward()
        optim.step()
        values.append(value.item())
    return values


PROPRIO_DIM = len(proprio_from_obs(random_obs(), ModelConfig().proprio_keys))  # 18: 7 + 2 + 3 + 6
