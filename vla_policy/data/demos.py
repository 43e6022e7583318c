"""Demos read from HDF5 into memory, at the model's image size (uint8) through the same
preprocessing the Policy applies at run time, so what trains is what runs; the data's
fingerprint and normalisation statistics."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

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
    goal: dict | None = None  # the parsed goal the demo was collected for (its `goal` attribute)


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
    """A training dataset: one HDF5 path, several joined by commas (demos + DAgger rollouts), or a
    directory of them (a task group's collection: one file per task)."""
    paths = []
    for part in (p.strip() for p in str(spec).split(",") if p.strip()):
        paths += sorted(str(p) for p in Path(part).glob("*.hdf5")) if Path(part).is_dir() else [part]
    return paths


def _without_task(args: dict) -> dict:
    kwargs = {k: v for k, v in args.get("env_kwargs", {}).items() if k != "task"}
    return {**{k: v for k, v in args.items() if k != "env_name"}, "env_kwargs": kwargs}


def _same_layout(a: dict, b: dict) -> bool:
    """Two files of different tasks with one observation layout and action space: Meta-World's
    tasks (every one observes and acts alike), collected with the same settings."""
    from sim.tasks import get_task

    tasks = (a["env_kwargs"].get("task"), b["env_kwargs"].get("task"))
    try:
        same_family = all(get_task(t).env_type == "metaworld" for t in tasks)
    except ValueError:  # a task this project does not know
        return False
    return same_family and _without_task(a) == _without_task(b)


def merge_env_args(per_file: list[dict]) -> dict:
    """One env_args for files that may differ in their task alone (a multi-task collection); the
    task becomes the tasks' group (mt10, ...) or their names joined by commas."""
    first = per_file[0]
    tasks = sorted({a["env_kwargs"]["task"] for a in per_file})
    if len(tasks) == 1:
        return first
    from sim.tasks import group_name

    name = group_name(tasks)
    return {**first, "env_name": name, "env_kwargs": {**first["env_kwargs"], "task": name}}


def load_demos(spec: str, config: ModelConfig, indices: list[int] | None = None) -> tuple[list[Demo], dict]:
    """Read the demos of every file in `spec` into memory; returns them and the env_args (which
    must agree across files: one task, one observation layout). `indices` picks demos of a single file."""
    paths = dataset_paths(spec)
    if not paths:
        raise DatasetError("no dataset path given")
    if indices is not None and len(paths) > 1:
        raise DatasetError("demo indices select from one dataset file, not several")
    demos, per_file = [], []
    for path in paths:
        more, file_args = _load_file(path, config, indices)
        if per_file and file_args != per_file[0] and not _same_layout(file_args, per_file[0]):
            raise DatasetError(
                f"{path}: its env_args differ from {paths[0]}'s; datasets trained together must come from "
                "one task and observation layout (or from Meta-World tasks, which share one)"
            )
        demos.extend(more)
        per_file.append(file_args)
    return demos, merge_env_args(per_file)


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
                goal=json.loads(group.attrs["goal"]) if "goal" in group.attrs else None,
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
