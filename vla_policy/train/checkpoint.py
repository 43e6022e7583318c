"""Checkpoints without pickle: safetensors for tensors, JSON for everything else.

<dir>/model.safetensors     EMA weights (what inference loads); frozen MiniLM weights excluded
<dir>/config.json           the full Config
<dir>/norm_stats.json       normalisation statistics of the training data
<dir>/meta.json             step, metrics, dataset fingerprint, env_args, dt, proprio_dim
<dir>/train_state.safetensors + train_state.json   raw weights, optimizer, RNG (to resume)
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vla_policy.atomic import fsync_dir
from vla_policy.config import Config, from_dict, to_dict
from vla_policy.data.normalize import NormStats

FROZEN_PREFIXES = ("text.backbone.",)  # comes from its own package, never stored


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, or does not fit the model/config it is loaded into."""


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().contiguous().cpu() for k, v in model.state_dict().items() if not k.startswith(FROZEN_PREFIXES)
    }


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: str | Path,
    *,
    ema_model,
    model,
    optimizer,
    scheduler,
    config: Config,
    stats: NormStats,
    meta: dict,
    rng: dict,
    gate=None,
) -> Path:
    """Write a complete checkpoint atomically: to `<dir>.tmp`, fsynced, then renamed into place;
    at every moment either `<dir>` or `<dir>.old` is a complete checkpoint (complete_checkpoint)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(ema_model), str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    (tmp / "norm_stats.json").write_text(json.dumps(stats.to_dict(), indent=2))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    optim_tensors, optim_meta = _flatten_optimizer(optimizer.state_dict())
    raw = {f"model.{k}": v for k, v in trainable_state(model).items()}
    rng_tensors = {f"rng.{k}": v for k, v in rng.items() if torch.is_tensor(v)}
    save_file({**raw, **optim_tensors, **rng_tensors}, str(tmp / "train_state.safetensors"))
    (tmp / "train_state.json").write_text(
        json.dumps(
            {
                "optimizer": optim_meta,
                "scheduler": scheduler.state_dict(),
                "rng": {k: v for k, v in rng.items() if not torch.is_tensor(v)},
            }
        )
    )
    if gate is not None:  # the instruction gate (vla_policy/gate.py) travels with the weights
        gate.save(tmp)
    _fsync_tree(tmp)  # the files are on disk before any rename makes them the checkpoint
    old = directory.with_name(directory.name + ".old")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)  # a kill between these two renames leaves `.old`: loading falls back to it
    os.replace(tmp, directory)
    fsync_dir(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(directory)


def complete_checkpoint(path: str | Path) -> Path:
    """`path`, or the previous checkpoint a save interrupted between its two renames left as
    `<path>.old`; the one a loader should read."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.is_dir():
        return old
    return path


def _upgrade(config: dict) -> dict:
    """Defaults that changed since a checkpoint was written: a config that does not name a field
    was trained with the field's old default."""
    vision = config.get("model", {}).get("vision")
    if isinstance(vision, dict):
        vision.setdefault("keypoints", 0)  # the keypoint token became the default on 2026-11-23
    return config


def read_checkpoint_meta(path: str | Path) -> tuple[Config, NormStats, dict]:
    path = complete_checkpoint(path)
    needed = ("model.safetensors", "config.json", "norm_stats.json", "meta.json")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    missing = [n for n in needed if not (path / n).exists()]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing}")
    try:
        config = from_dict(Config, _upgrade(json.loads((path / "config.json").read_text())), f"{path}/config.json")
        stats = NormStats.from_dict(json.loads((path / "norm_stats.json").read_text()))
        meta = json.loads((path / "meta.json").read_text())
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: unreadable checkpoint metadata ({err})") from err
    return config, stats, meta


def load_weights(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str, allow_missing: bool = False
) -> list[str]:
    """Strict load of the trainable weights; mismatches are named. With `allow_missing` (fine-tuning
    a model that has new heads) weights the checkpoint lacks keep their init; -> their names."""
    expected = trainable_state(model)
    missing = sorted(set(expected) - set(tensors))
    fresh, missing = (missing, []) if allow_missing else ([], missing)
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {names[:5]}{' ...' if len(names) > 5 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if names
        )
        raise CheckpointError(
            f"{where}: weights do not match this model's config ({detail}). Was it trained with a different config?"
        )
    model.load_state_dict(tensors, strict=False)
    return fresh


def load_checkpoint(path: str | Path):
    """-> (model in eval mode with EMA weights, config, stats, meta). Executes no stored code."""
    from vla_policy.models.build import build_model

    path = complete_checkpoint(path)
    config, stats, meta = read_checkpoint_meta(path)
    model = build_model(config.model, int(meta["proprio_dim"]))
    load_weights(model, load_file(str(path / "model.safetensors")), f"{path}/model.safetensors")
    return model.eval(), config, stats, meta


def load_train_state(path: str | Path, model, optimizer, scheduler) -> dict:
    """Restore raw weights, optimizer and scheduler for resuming; returns the RNG snapshot."""
    path = complete_checkpoint(path)
    tensors = load_file(str(path / "train_state.safetensors"))
    state = json.loads((path / "train_state.json").read_text())
    load_weights(model, {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    rng = dict(state["rng"])
    rng.update({k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")})
    return rng
