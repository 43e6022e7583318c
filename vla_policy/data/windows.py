"""Training samples from HDF5 demos: (observation at t, actions t..t+H-1, observation at t+H).

Demos are loaded once into memory at the model's image size (uint8) through the same
preprocessing the Policy applies at run time, so what trains is what runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from vla_policy.config import ModelConfig
from vla_policy.data.hdf5_dataset import DatasetError, demo_names, env_args, open_dataset
from vla_policy.data.images import preprocess_images
from vla_policy.data.normalize import NormStats
from vla_policy.models.text import tokenize


def quat_to_rot6d(quat_wxyz: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) quaternions -> (..., 6) the first two columns of their rotation matrices.

    Continuous over rotations (Zhou et al. 2019), unlike the quaternion itself: q and -q are the
    same rotation, and a gripper pointing down sits where the w >= 0 convention flips the sign of
    the whole quaternion at the slightest tilt."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    columns = [1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),  # first column
               2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)]  # second column
    return np.stack(columns, axis=-1)


# Proprio keys computed from an observation key: name -> (source key, function).
DERIVED_PROPRIO = {"eef_rot6d": ("eef_quat", quat_to_rot6d)}


def proprio_sources(keys: tuple[str, ...]) -> set[str]:
    """The observation keys that the proprio keys are read or derived from."""
    return {DERIVED_PROPRIO[k][0] if k in DERIVED_PROPRIO else k for k in keys}


def proprio_from_obs(obs: dict, keys: tuple[str, ...]) -> np.ndarray:
    """(..., P) float32: the configured proprio keys concatenated in order (derived ones computed)."""
    missing = sorted(k for k in proprio_sources(keys) if k not in obs)
    if missing:
        raise KeyError(f"observation is missing proprio key(s) {missing}; it has {sorted(obs)}")
    parts = [DERIVED_PROPRIO[k][1](obs[DERIVED_PROPRIO[k][0]]) if k in DERIVED_PROPRIO else obs[k] for k in keys]
    return np.concatenate([np.asarray(part, dtype=np.float32) for part in parts], axis=-1)


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
    # instructions_naming_each_object), and (R*K, 2) the object each rewording then names as the
    # target and as the place (-1: none).
    naming_ids: torch.Tensor | None = None
    naming_mask: torch.Tensor | None = None
    naming_valid: torch.Tensor | None = None
    naming_objects: torch.Tensor | None = None


def object_positions(object_state: np.ndarray, eef_pos: np.ndarray, objects: int) -> np.ndarray:
    """(T, 7K) object_state (position + quaternion each) and (T, 3) eef_pos -> (T, 3K) float32
    positions relative to the gripper in decimetres (the auxiliary target; about unit scale)."""
    if object_state.shape[-1] != 7 * objects:
        raise DatasetError(f"object_state has {object_state.shape[-1]} numbers; aux.objects={objects} needs {7 * objects}")
    positions = object_state.reshape(len(object_state), objects, 7)[:, :, :3] - eef_pos[:, None]
    return (positions * 10.0).reshape(len(object_state), -1).astype(np.float32)


def instructions_naming_each_object(instruction: str, target: str, names: tuple[str, ...]) -> list[str | None]:
    """The instruction with its target's name swapped for each object's in turn ("pick up the red
    cube" -> "... the blue cube"), in object_state order; None where the swap would be ambiguous
    (the object is already named for another role, as stack's base cube is) or the target's name
    is not in the words. The grounding objective asks where the reworded instruction's object is:
    a scene then no longer tells which object is meant, only the words do."""
    word = re.compile(rf"\b{re.escape(target)}\b")
    if not word.search(instruction):
        return [instruction if name == target else None for name in names]
    return [instruction if name == target
            else None if re.search(rf"\b{re.escape(name)}\b", instruction)
            else word.sub(name, instruction)
            for name in names]


ROLES = ("target", "place_on")  # the goal fields that name an object: what to act on, where to put it


def named_objects(group) -> tuple[dict[str, str], tuple[str, ...]]:
    """A demo's named objects by role ({"target": "green", "place_on": "red"} for a stack) and its
    task's object names (object_state order)."""
    from sim.tasks import get_task

    goal = json.loads(group.attrs["goal"])
    names = get_task(str(group.attrs["task"])).object_names
    roles = {role: goal[role] for role in ROLES if goal.get(role)}
    for role, name in roles.items():
        if name not in names:
            raise DatasetError(f"{group.name}: goal {role} {name!r} is none of the task's objects {names}")
    if "target" not in roles:
        raise DatasetError(f"{group.name}: the goal names no target")
    return roles, names


def rewordings(instruction: str, roles: dict[str, str], names: tuple[str, ...],
               with_place: bool) -> tuple[list[str | None], list[tuple[int, int]]]:
    """Every rewording the grounding objectives ask with: the object named in each role (the target;
    with `with_place` also the place) swapped for each object in turn. -> R*K instructions (None
    where none exists) and for each, the objects it then names as (target, place) (-1: no place)."""
    index = {role: names.index(name) for role, name in roles.items()}
    texts, objects = [], []
    for role in ROLES[:2 if with_place else 1]:
        if role not in roles:
            texts += [None] * len(names)
            objects += [(0, -1)] * len(names)
            continue
        texts += instructions_naming_each_object(instruction, roles[role], names)
        for k in range(len(names)):
            named = index | {role: k}
            objects.append((named["target"], named.get("place_on", -1) if with_place else -1))
    return texts, objects


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
            raise DatasetError(f"{path}: its env_args differ from {paths[0]}'s; datasets trained together must "
                               "come from one task and observation layout")
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
                raise DatasetError(f"{path}: data/{name}/obs lacks {missing}; the model's cameras are "
                                   f"{list(config.vision.cameras)}, the dataset has {sorted(obs)}")
            images = torch.stack([(preprocess_images(obs[k][()], config.vision.image_size) * 255).round().to(torch.uint8)
                                  for k in keys], dim=1)
            text = str(group.attrs["instruction"])
            ids, mask = tokenize([text], config.text.max_tokens)
            sources = {k: obs[k][()] for k in proprio_sources(config.proprio_keys) if k in obs}
            demo = Demo(images, proprio_from_obs(sources, config.proprio_keys),
                        group["actions"][()].astype(np.float32), ids[0], mask[0], text)
            if config.aux.object_position or config.aux.target_position:
                if "object_state" not in obs:
                    raise DatasetError(f"{path}: data/{name}/obs has no object_state, which aux.object_position "
                                       "and aux.target_position need")
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


class DemoWindows(Dataset):
    """Every (demo, t) as one sample; actions past the episode end are padded and masked.

    All demos live in a few concatenated tensors (on the training device if asked), and
    `batch(indices)` gathers a whole batch with index arithmetic: no per-sample Python, so a
    GPU is fed at its own pace.
    """

    def __init__(self, demos: list[Demo], stats: NormStats, chunk: int, device: torch.device | str = "cpu"):
        self.stats, self.chunk, self.device = stats, chunk, torch.device(device)
        lengths = torch.tensor([len(d.actions) for d in demos])
        self.images = torch.cat([d.images for d in demos]).to(self.device)  # (N, C, 3, S, S) uint8
        self.proprio = torch.from_numpy(np.concatenate([stats.normalize_proprio(d.proprio) for d in demos])
                                        .astype(np.float32)).to(self.device)  # (N, P)
        self.actions = torch.from_numpy(np.concatenate([stats.normalize_actions(d.actions) for d in demos])
                                        .astype(np.float32)).to(self.device)  # (N, A) in [-1, 1]
        self.demo_of_step = torch.repeat_interleave(torch.arange(len(demos)), lengths).to(self.device)  # (N,)
        self.demo_end = torch.cumsum(lengths, 0).to(self.device)  # (D,) exclusive end of each demo's steps
        self.text_ids = torch.stack([d.text_ids for d in demos]).to(self.device)  # (D, L)
        self.text_mask = torch.stack([d.text_mask for d in demos]).to(self.device)  # (D, L)
        self.proprio_dim = self.proprio.shape[1]
        self.object_position = self._concat([d.object_position for d in demos])  # (N, 3K) or None
        self.naming = (  # (D, R*K, L) ids, (D, R*K, L) mask, (D, R*K) valid, (D, R*K, 2) objects; or None
            tuple(torch.stack([getattr(d, f) for d in demos]).to(self.device)
                  for f in ("naming_ids", "naming_mask", "naming_valid", "naming_objects"))
            if demos and all(d.naming_ids is not None for d in demos) and self.object_position is not None else None
        )

    def _concat(self, per_demo: list) -> torch.Tensor | None:
        """Per-demo (T, k) arrays -> one (N, k) tensor on the device; None unless every demo has one."""
        if not per_demo or any(x is None for x in per_demo):
            return None
        return torch.from_numpy(np.concatenate(per_demo)).to(self.device)

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.batch(torch.tensor([i])).items()}

    def batch(self, indices: torch.Tensor | list[int]) -> dict:
        """(B,) step indices -> a batch dict on this dataset's device (images still uint8)."""
        t = torch.as_tensor(indices, device=self.device)
        demo = self.demo_of_step[t]
        end = self.demo_end[demo]
        steps = t[:, None] + torch.arange(self.chunk, device=self.device)  # (B, H)
        valid = steps < end[:, None]
        actions = self.actions[torch.minimum(steps, end[:, None] - 1)] * valid[..., None]  # (B, H, A)
        batch = {
            "images": self.images[t],  # (B, C, 3, S, S) uint8; the trainer scales and augments
            "future_images": self.images[torch.minimum(t + self.chunk, end - 1)],
            "camera_mask": torch.ones(len(t), self.images.shape[1], dtype=torch.bool, device=self.device),
            "text_ids": self.text_ids[demo],
            "text_mask": self.text_mask[demo],
            "proprio": self.proprio[t],
            "actions": actions,
            "action_mask": valid,
        }
        if self.object_position is not None:
            batch["object_position"] = self.object_position[t]
        if self.naming is not None:  # one rewording per sample, drawn from those that exist
            ids, mask, valid, objects = self.naming
            k = torch.multinomial(valid[demo].float(), 1)[:, 0]  # (B,)
            named = objects[demo, k]  # (B, 2) the target, the place (-1: none)
            positions = self.object_position[t].view(len(t), -1, 3)  # (B, K, 3)
            rows = torch.arange(len(t), device=self.device)
            batch["target_text_ids"], batch["target_text_mask"] = ids[demo, k], mask[demo, k]
            batch["target_position"] = positions[rows, named[:, 0]]
            if objects.shape[1] == 2 * positions.shape[1]:  # two roles (aux.place_position): where the named place is
                batch["place_position"] = positions[rows, named[:, 1].clamp(min=0)]
                batch["place_valid"] = named[:, 1] >= 0
        return batch


def compute_stats(demos: list[Demo]) -> NormStats:
    return NormStats.compute(np.concatenate([d.proprio for d in demos]), np.concatenate([d.actions for d in demos]))
