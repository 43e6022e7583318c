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
