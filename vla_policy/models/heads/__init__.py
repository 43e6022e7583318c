"""Action heads, chosen by `ModelConfig.head`: both predict a chunk (B, H, action_dim)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from sim.suggest import did_you_mean

HEADS: dict[str, Callable[..., nn.Module]] = {}


def register_head(name: str):
    def wrap(cls):
        HEADS[name] = cls
        return cls

    return wrap


def build_head(config) -> nn.Module:
    from vla_policy.models.heads import discrete, flow  # noqa: F401  (registration)

    if config.head not in HEADS:
        raise ValueError(f"unknown head {config.head!r}{did_you_mean(config.head, HEADS)}; valid: {sorted(HEADS)}")
    return HEADS[config.head](config)
