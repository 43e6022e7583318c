"""robomimic-style HDF5 episodes: read, write, inspect, validate.

Layout::

    data/                    attrs: env_args (JSON), total (steps), task, model_file (scene XML),
                                    state_spec, vla_stack_version
    data/demo_<i>/           attrs: num_samples, instruction, seed, success, goal (JSON), task,
                                    clipped_actions, model_sha256
        obs/<key>            (T, ...)  e.g. agentview_image (T, H, W, 3) uint8, joint_pos (T, 7)
        actions              (T, A)    A: the task's action space (7 for the Panda tasks, 4 for Meta-World)
        states               (T, S)   SimEnv.get_state() before each action
        final_state          (S,)     state after the last action
        rewards, dones       (T,)

`states` extend robomimic's ([time, qpos, qvel]) with the rest of MuJoCo's
integration state and the gripper's command memory, so replay is bit-exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from vla_policy.types import Episode

REQUIRED = ("actions", "states", "rewards", "dones", "obs")
PER_STEP = ("actions", "states", "rewards", "dones")


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or not in the expected layout."""


@contextlib.contextmanager
def open_dataset(path: str | Path, mode: str = "r"):
    """h5py.File with errors that say which file and what is wrong."""
    path = Path(path)
    if mode == "r" and not path.exists():
        raise DatasetError(f"{path}: no such file")
    try:
        f = h5py.File(path, mode)
    except OSError as err:
        raise DatasetError(
            f"{path}: not a readable HDF5 file ({err}). It may be truncated, still being written, "
            "or not HDF5 at all; `vla dataset validate` explains what it can read."
        ) from err
    try:
        if mode == "r" and "data" not in f:
            raise DatasetError(
                f"{path}: no 'data' group; this is not a vla_stack/robomimic dataset (top-level keys: {list(f)})"
            )
        yield f
    finally:
        f.close()


def demo_names(f: h5py.File) -> list[str]:
    """Demo groups in numeric order (demo_2 before demo_10)."""
    names = [n for n in f["data"].keys() if n.startswith("demo_")]
    return sorted(names, key=lambda n: int(n.split("_", 1)[1]) if n.split("_", 1)[1].isdigit() else 1 << 60)


def write_episode(group: h5py.Group, ep: Episode, model_xml: str | None = None) -> None:
    """Write one episode into an empty group."""
    obs = group.create_group("obs")
    for key, value in ep.obs.items():
        if value.dtype == np.uint8 and value.ndim == 4:  # images: one compressed chunk per frame
            obs.create_dataset(key, data=value, chunks=(1, *value.shape[1:]), compression="gzip", compression_opts=4)
        else:
            obs.create_dataset(key, data=value)
    for key in PER_STEP:
        group.create_dataset(key, data=getattr(ep, key))
    group.create_dataset("final_state", data=ep.final_state)
    group.attrs.update(
        num_samples=len(ep),
        instruction=ep.instruction,
        task=ep.task,
        seed=ep.seed,
        success=ep.success,
        goal=json.dumps(ep.goal),
        clipped_actions=ep.clipped_actions,
    )
    if model_xml is not None:
        group.attrs["model_sha256"] = hashlib.sha256(model_xml.encode()).hexdigest()


def check_output(out: str | Path, overwrite: bool) -> Path:
    """The path a command will write a dataset to: an .hdf5/.h5 name in an existing directory,
    not an existing file unless `overwrite` (as `vla collect`)."""
    out = Path(out)
    if out.suffix not in (".hdf5", ".h5"):
        raise DatasetError(f"{out}: dataset files end in .hdf5 or .h5")
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise DatasetError(f"{out}: directory {out.parent} does not exist")
    return out


def write_dataset(
    out: str | Path, env_args: dict, episodes: Iterable[Episode | tuple[Episode, dict]], attrs: dict | None = None
) -> int:
    """Write `episodes` (any iterable: they are written one at a time; an (episode, attributes)
    pair adds attributes to its demo group) as data/demo_<i> of `out`, atomically: into a
    temporary file renamed into place once complete, removed if anything fails. -> the number
    of demos."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    total = demos = 0
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            data.attrs.update({"task": env_args.get("env_name", ""), **(attrs or {}), "env_args": json.dumps(env_args)})
            for item in episodes:
                episode, extra = item if isinstance(item, tuple) else (item, {})
                group = data.create_group(f"demo_{demos}")
                write_episode(group, episode)
                group.attrs.update(extra)
                demos, total = demos + 1, total + len(episode)
            data.attrs["total"] = total
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return demos


def read_episode(group: h5py.Group, obs_keys: list[str] | None = None) -> Episode:
    """Load one demo group fully into memory (optionally only some observation keys)."""
    keys = list(group["obs"].keys()) if obs_keys is None else obs_keys
    attrs = group.attrs
    return Episode(
        obs={k: group["obs"][k][()] for k in keys},
        actions=group["actions"][()],
        states=group["states"][()],
        rewards=group["rewards"][()],
        dones=group["dones"][()],
        final_state=group["final_state"][()] if "final_state" in group else group["states"][-1],
        instruction=str(attrs.get("instruction", "")),
        task=str(attrs.get("task", "")),
        seed=int(attrs.get("seed", -1)),
        success=bool(attrs.get("success", False)),
        goal=json.loads(attrs.get("goal", "{}")),
        clipped_actions=int(attrs.get("clipped_actions", 0)),
    )


def env_args(f: h5py.File) -> dict:
    """The env description stored with the dataset (robomimic's `env_args`)."""
    raw = f["data"].attrs.get("env_args")
    if raw is None:
        raise DatasetError(f"{f.filename}: data/ has no 'env_args' attribute; cannot rebuild its environment")
    return json.loads(raw)


def dataset_info(path: str | Path) -> dict:
    """Summary: demos, steps, tasks, instructions, observation keys and shapes."""
    with open_dataset(path) as f:
        names = demo_names(f)
        lengths, tasks, instructions, successes = [], {}, {}, 0
        for name in names:
            group = f["data"][name]
            lengths.append(int(group["actions"].shape[0]))
            task = str(group.attrs.get("task", "?"))
            text = str(group.attrs.get("instruction", "?"))
            tasks[task] = tasks.get(task, 0) + 1
            instructions[text] = instructions.get(text, 0) + 1
            successes += bool(group.attrs.get("success", False))
        first = f["data"][names[0]] if names else None
        obs = {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)} for k, v in first["obs"].items()} if first else {}
        return {
            "path": str(path),
            "demos": len(names),
            "steps": int(sum(lengths)),
            "episode_length": {
                "min": min(lengths, default=0),
                "mean": float(np.mean(lengths)) if lengths else 0.0,
                "max": max(lengths, default=0),
            },
            "success_rate": successes / len(names) if names else 0.0,
            "tasks": tasks,
            "instructions": dict(sorted(instructions.items())),
            "obs": obs,
            "action_dim": int(first["actions"].shape[1]) if first else 0,
            "env_args": env_args(f) if "env_args" in f["data"].attrs else None,
            "packed": all(f["data"].get(n, getlink=True).__class__ is h5py.HardLink for n in names),
        }


def validate_dataset(path: str | Path) -> list[str]:
    """Every problem found, each naming its demo and key; an empty list means valid."""
    problems: list[str] = []
    try:
        with open_dataset(path) as f:
            if "env_args" not in f["data"].attrs:
                problems.append("data: missing attribute 'env_args'")
            names = demo_names(f)
            if not names:
                problems.append("data: no demo_<i> groups")
            action_dim = _task_action_dim(f["data"].attrs.get("env_args"))
            obs_keys = None
            for name in names:
                try:
                    group = f["data"][name]
                except (KeyError, OSError) as err:
                    problems.append(f"data/{name}: cannot be opened ({err}); a linked part file may be missing")
                    continue
                problems += _validate_demo(name, group, action_dim)
                if action_dim is None and "actions" in group and group["actions"].ndim == 2:
                    action_dim = group["actions"].shape[1]  # the first demo's, for the others
                keys = set(group["obs"].keys()) if "obs" in group else set()
                if obs_keys is None:
                    obs_keys = keys
                elif keys != obs_keys:
                    problems.append(
                        f"data/{name}/obs: keys {sorted(keys)} differ from the first demo's {sorted(obs_keys)}"
                    )
    except DatasetError as err:
        problems.append(str(err))
    return problems


def _task_action_dim(env_args) -> int | None:
    """The action width of the dataset's task (None: not a task this project knows)."""
    try:
        task = json.loads(env_args)["env_kwargs"]["task"]
        from sim.tasks import get_task

        return get_task(task).action_dim
    except (TypeError, ValueError, KeyError):
        return None


def _validate_demo(name: str, group: h5py.Group, action_dim: int | None) -> list[str]:
    problems = [f"data/{name}: missing '{key}'" for key in REQUIRED if key not in group]
    if "actions" not in group:
        return problems
    length = group["actions"].shape[0]
    if length == 0:
        problems.append(f"data/{name}/actions: empty episode")
    if group["actions"].ndim != 2 or (action_dim is not None and group["actions"].shape[1] != action_dim):
        problems.append(f"data/{name}/actions: shape {group['actions'].shape}, expected (T, {action_dim or 'A'})")
    arrays = {key: group[key] for key in PER_STEP if key in group}
    if "obs" in group:
        arrays.update({f"obs/{k}": v for k, v in group["obs"].items()})
    for key, dataset in arrays.items():
        if dataset.shape[0] != length:
            problems.append(f"data/{name}/{key}: length {dataset.shape[0]} != {length} actions")
        if dataset.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(dataset[()])))
            if bad:
                problems.append(f"data/{name}/{key}: {bad} NaN/inf values")
    if "actions" in arrays and np.abs(arrays["actions"][()]).max(initial=0) > 1.0:
        problems.append(f"data/{name}/actions: values outside [-1, 1]")
    if group.attrs.get("num_samples", length) != length:
        problems.append(f"data/{name}: attribute num_samples={group.attrs['num_samples']} but {length} actions")
    if "instruction" not in group.attrs:
        problems.append(f"data/{name}: missing attribute 'instruction'")
    return problems
