"""`vla bench policy`: parameters, inference ms per chunk (batch 1, two 128 px cameras) for each
head, and training samples/s, for a config (default: the default model)."""

from __future__ import annotations

import time

import numpy as np
import torch

from vla_policy.config import Config, load_config, merge
from vla_policy.data.normalize import NormStats
from vla_policy.models.build import build_model
from vla_policy.policy import Policy
from vla_policy.proprio import proprio_from_obs
from vla_policy.train.augment import prepare_batch


def _obs(image_size: int = 128) -> dict:
    rng = np.random.default_rng(0)
    return {
        "agentview_image": rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8),
        "wrist_image": rng.integers(0, 255, (image_size, image_size, 3), dtype=np.uint8),
        "joint_pos": rng.normal(size=7),
        "gripper_qpos": rng.normal(size=2),
        "eef_pos": rng.normal(size=3),
        "eef_quat": np.array([1.0, 0, 0, 0]),
        "instruction": "put the red cube on the blue cube",
    }


def _proprio_dim(config: Config) -> int:
    return len(proprio_from_obs(_obs(), config.model.proprio_keys))


def _stats(proprio_dim: int) -> NormStats:
    return NormStats(tuple([0.0] * proprio_dim), tuple([1.0] * proprio_dim), tuple([-1.0] * 7), tuple([1.0] * 7))


def inference_ms(config: Config, repeats: int, device: str) -> dict:
    torch.manual_seed(0)
    proprio_dim = _proprio_dim(config)
    model = build_model(config.model, proprio_dim)
    policy = Policy(model, config, _stats(proprio_dim), device=device)
    obs = _obs()
    for _ in range(3):
        policy.predict_chunk(obs)  # warm-up (MiniLM text encoding is cached after the first call)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        policy.predict_chunk(obs)
        times.append((time.perf_counter() - start) * 1e3)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {
        "architecture": config.model.architecture,
        "head": config.model.head,
        "trainable_parameters": trainable,
        "frozen_parameters": frozen,
        "chunk": config.model.chunk,
        "p50_ms": round(float(np.percentile(times, 50)), 2),
        "p95_ms": round(float(np.percentile(times, 95)), 2),
    }


def training_samples_per_s(config: Config, steps: int, batch_size: int) -> float:
    torch.manual_seed(0)
    proprio_dim = _proprio_dim(config)
    model = build_model(config.model, proprio_dim)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    c, s, h = len(config.model.vision.cameras), config.model.vision.image_size, config.model.chunk
    from vla_policy.models.text import tokenize

    ids, mask = tokenize(["put the red cube on the blue cube"] * batch_size, config.model.text.max_tokens)
    raw = {
        "images": torch.randint(0, 255, (batch_size, c, 3, s, s), dtype=torch.uint8),
        "future_images": torch.randint(0, 255, (batch_size, c, 3, s, s), dtype=torch.uint8),
        "camera_mask": torch.ones(batch_size, c, dtype=torch.bool),
        "text_ids": ids,
        "text_mask": mask,
        "proprio": torch.randn(batch_size, proprio_dim),
        "actions": torch.rand(batch_size, h, 7) * 2 - 1,
        "action_mask": torch.ones(batch_size, h, dtype=torch.bool),
    }
    raw.update(_privileged_targets(config, ids, mask))
    start = None
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        batch = prepare_batch(raw, True, 0.1, torch.device("cpu"))
        loss = model.compute_loss(batch)["total"]
        optim.zero_grad()
        loss.backward()
        optim.step()
    return steps * batch_size / (time.perf_counter() - start)


def _privileged_targets(config: Config, ids: torch.Tensor, mask: torch.Tensor) -> dict:
    """Random targets of the enabled privileged objectives and goal labels (what DemoWindows.batch
    gathers from a dataset's object states and goals), so a recipe that trains with them is timed with them."""
    aux, b = config.model.aux, ids.shape[0]
    out = {}
    if aux.object_position:
        out["object_position"] = torch.randn(b, 3 * aux.objects)  # (B, 3K) dm from the gripper
    if aux.target_position:
        out |= {"target_text_ids": ids, "target_text_mask": mask, "target_position": torch.randn(b, 3)}
    if aux.place_position:
        out |= {"place_position": torch.randn(b, 3), "place_valid": torch.ones(b, dtype=torch.bool)}
    if aux.goal:
        out["goal"] = torch.randint(config.model.text.goals, (b,))  # (B,) the goal each sample words
    return out


def bench_policy(
    source: str = "default",
    overrides: list[str] | None = None,
    repeats: int = 50,
    device: str = "cpu",
    train_steps: int = 5,
) -> dict:
    config = load_config(source, overrides)
    result = {
        "benchmark": "policy",
        "config": source,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cameras": list(config.model.vision.cameras),
        "camera_pixels": 128,
        "model_image_size": config.model.vision.image_size,
        "heads": [],
    }
    for head in ("flow", "discrete"):
        result["heads"].append(inference_ms(merge(config, {"model": {"head": head}}), repeats, device))
    result["train_samples_per_s"] = round(training_samples_per_s(config, train_steps, config.train.batch_size), 1)
    result["target_p50_ms"] = 30
    return result
