"""Demos read from HDF5 into memory, at the model's image size (uint8) through the same
preprocessing the Policy applies at run time, so what trains is what runs; the data's
fingerprint and normalisation statistics."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from vla_policy.config import ModelConfig
from vla_policy.data.hdf5_dataset import DatasetError, demo_names, env_args, open_dataset
from vla_policy.data.images import preprocess_images
from vla_policy.data.normalize import NormStats
from vla_policy.data.rewording import named_objects, rewordings
from vla_policy.models.text import tokenize
from vla_policy.proprio import proprio_from_obs, proprio_sources


@dataclass
class Demo:
    images: torch.Tensor  # (T, C, 3, S, S) uint8
    proprio: np.ndarray  # (T, P) float32 (raw)
    actions: np.ndarray  # (T, A) float32 (raw)
    text_ids: torch.Tensor  # (L,)
    text_mask: torch.Tensor  # (L,)
    instruction: str
    object_position: np.ndarray | None = None  # (T, 3K) objects relative to the gripper, decimetres
    # The instruction reworded to name each object in turn in each of its roles (aux.target_position,
    # aux.place_position): (R*K, L) ids and mask, (R*K,) whether that rewording exists (see
    # vla_policy.data.rewording), and (R*K, 2) the object each rewording then names as the
    # target and as the place (-1: none).
    naming_ids: torch.Tensor | None = None
    naming_mask: torch.Tensor | None = None
    naming_valid: torch.Tensor | None = None
    naming_objects: torch.Tensor | None = None


def object_positions(object_state: np.ndarray, eef_pos: np.ndarray, objects: int) -> np.ndarray:
    """(T, 7K) object_state (position + quaternion each) and (T, 3) eef_pos -> (T, 3K) float32
    positions relative to the gripper in decimetres (the auxiliary target; about unit scale)."""
    if object_state.shape[-1] != 7 * objects:
        raise DatasetError(
            f"object_state has {object_state.shape[-1]} numbers; aux.objects={objects} needs {7 * objects}"
        )
    positions = object_state.reshape(len(object_state), objects, 7)[:, :, :3] - eef_pos[:, None]
    return (positions * 10.0).reshape(len(object_state), -1).astype(np.float32)


def dataset_paths(spec: str) -> list[str]:
    """A training dataset: one HDF5 path, or several joined by commas (demos + DAgger rollouts)."""
    return [p.strip() for p in str(spec).split(",") if p.strip()]


def load_demos(spec: str, config: ModelConfig, indices: list[int] | None = None) -> tuple[list[Demo], dict]:
    """Read the demos of every file in `spec` into memory; returns them and the env_args (which
    must agree across files: one task, one observation layout). `indices` picks demos of a single file."""
    paths = dataset_paths(spec)
    if not paths:
        raise DatasetError("no dataset path given")
    if indices is not None and len(paths) > 1:
        raise DatasetError("demo indices select from one dataset file, not several")
    demos, args = [], None
    for path in paths:
        more, file_args = _load_file(path, config, indices)
        if args is not None and file_args != args:
            raise DatasetError(
                f"{path}: its env_args differ from {paths[0]}'s; datasets trained together must "
                "come from one task and observation layout"
            )
        demos.extend(more)
        args = file_args
    return demos, args


def _load_file(path: str, config: ModelConfig, indices: list[int] | None) -> tuple[list[Demo], dict]:
    demos = []
    with open_dataset(path) as f:
        names = demo_names(f)
        if not names:
            raise DatasetError(f"{path}: no demos to train on")
        chosen = [names[i] for i in indices] if indices is not None else names
        for name in tqdm(chosen, desc=f"load {path}", unit="demo"):
            group = f["data"][name]
            obs = group["obs"]
            keys = [f"{cam}_image" for cam in config.vision.cameras]
            missing = [k for k in keys if k not in obs]
            if missing:
                raise DatasetError(
                    f"{path}: data/{name}/obs lacks {missing}; the model's cameras are "
                    f"{list(config.vision.cameras)}, the dataset has {sorted(obs)}"
                )
            images = torch.stack(
                [(preprocess_images(obs[k][()], config.vision.image_size) * 255).round().to(torch.uint8) for k in keys],
                dim=1,
            )
            text = str(group.attrs["instruction"])
            ids, mask = tokenize([text], config.text.max_tokens)
            sources = {k: obs[k][()] for k in proprio_sources(config.proprio_keys) if k in obs}
            demo = Demo(
                images,
                proprio_from_obs(sources, config.proprio_keys),
                group["actions"][()].astype(np.float32),
                ids[0],
                mask[0],
                text,
            )
            if config.aux.object_position or config.aux.target_position:
                if "object_state" not in obs:
                    raise DatasetError(
                        f"{path}: data/{name}/obs has no object_state, which aux.object_position "
                        "and aux.target_position need"
                    )
                demo.object_position = object_positions(obs["object_state"][()], obs["eef_pos"][()], config.aux.objects)
            if config.aux.target_position:
                reworded, objects = rewordings(text, *named_objects(group), with_place=bool(config.aux.place_position))
                demo.naming_ids, demo.naming_mask = tokenize([r or "" for r in reworded], config.text.max_tokens)
                demo.naming_valid = torch.tensor([r is not None for r in reworded])
                demo.naming_objects = torch.tensor(objects)
            demos.append(demo)
        args = env_args(f)
    return demos, args


def fingerprint(spec: str) -> str:
    """sha256 over every demo's actions and instruction, file by file: identifies the training data
    (for one file the same digest as before several were allowed)."""
    digest = hashlib.sha256()
    for path in dataset_paths(spec):
        with open_dataset(path) as f:
            for name in demo_names(f):
                digest.update(name.encode())
                digest.update(f["data"][name]["actions"][()].tobytes())
                digest.update(str(f["data"][name].attrs.get("instruction", "")).encode())
    return digest.hexdigest()


def compute_stats(demos: list[Demo]) -> NormStats:
    return NormStats.compute(np.concatenate([d.proprio for d in demos]), np.concatenate([d.actions for d in demos]))
