"""Shared fixtures. Envs are expensive (~1.5 s to build), so they are module-scoped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def vla_cmd() -> list[str]:
    """The `vla` command as users run it (the installed entry point's module)."""
    return [sys.executable, "-m", "vla_policy.cli"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny VLA checkpoint (world model included) trained for 2 steps on 2 Lift demos at 32 px."""
    from sim.env import EnvConfig
    from vla_policy.config import load_config
    from vla_policy.data.collect import collect
    from vla_policy.train.trainer import Trainer

    work = tmp_path_factory.mktemp("tiny_checkpoint")
    demos = work / "lift.hdf5"
    collect("lift", 2, demos, config=EnvConfig(task="lift", image_size=32))
    config = load_config(
        "tiny", [f"train.dataset={demos}", f"train.out={work / 'run'}", "train.steps=2", "train.val_fraction=0"]
    )
    Trainer(config).train()
    return work / "run" / "checkpoints" / "last"
