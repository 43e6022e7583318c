"""One place that turns `ModelConfig.architecture` into a model."""

from __future__ import annotations

from torch import nn

from vla_policy.config import ModelConfig
from vla_policy.models.conv_bc import ConvBCModel
from vla_policy.models.vla import VLAModel
from vla_policy.registry import Registry

ARCHITECTURES: Registry[type[nn.Module]] = Registry("architecture")
ARCHITECTURES.register("vla")(VLAModel)
ARCHITECTURES.register("conv_bc")(ConvBCModel)


def build_model(config: ModelConfig, proprio_dim: int) -> nn.Module:
    """A VLAModel, or the language-blind ConvBCModel; both have compute_loss / sample_actions."""
    return ARCHITECTURES.get(config.architecture)(config, proprio_dim)
