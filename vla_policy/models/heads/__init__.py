"""Action heads, chosen by `ModelConfig.head`: both predict a chunk (B, H, action_dim)."""

from __future__ import annotations

from torch import nn

from vla_policy.registry import Registry

HEADS: Registry[type[nn.Module]] = Registry("head")
register_head = HEADS.register


def build_head(config) -> nn.Module:
    from vla_policy.models.heads import discrete, flow  # noqa: F401  (registration)

    return HEADS.get(config.head)(config)
