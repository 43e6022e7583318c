"""Fusion strategies, one registry, chosen by `ModelConfig.fusion`: early (single stream, as in
VisualBERT), late (decision level), cross and gated mid fusion (Flamingo), bidirectional and
co-attention (two streams, ViLBERT), hybrid (two streams, then one) and cross-channel.

Every fusion maps the encoded modalities to one context token set:
`forward(m: Modalities) -> (tokens (B, N, D), mask (B, N))`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vla_policy.models.attention import (
    BidirectionalCrossAttention,
    CoAttention,
    CrossAttention,
    CrossChannelAttention,
    GatedCrossAttention,
)
from vla_policy.models.layers import Block, Transformer
from vla_policy.registry import Registry

FUSIONS: Registry[type[nn.Module]] = Registry("fusion")
register_fusion = FUSIONS.register


def build_fusion(name: str, dim: int, heads: int, layers: int) -> nn.Module:
    return FUSIONS.get(name)(dim, heads, layers)


@dataclass
class Modalities:
    vision: Tensor  # (B, C*Nv, D)
    vision_mask: Tensor  # (B, C*Nv)
    text: Tensor  # (B, Nt, D)
    text_mask: Tensor  # (B, Nt)
    proprio: Tensor  # (B, 1, D)
    cameras: int
    stem_features: Tensor | None = None  # (B*C, F, S/4, S/4) the vision stem's, for the grounding objective
    goal_logits: Tensor | None = None  # (B, G) the goal the instruction is read as (text.condition=goal)

    @property
    def proprio_mask(self) -> Tensor:
        return torch.ones(self.proprio.shape[:2], dtype=torch.bool, device=self.proprio.device)

    def concat(self, vision: Tensor | None = None, text: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """[text, proprio, vision] with their masks (optionally replacing vision/text tokens)."""
        tokens = torch.cat(
            [self.text if text is None else text, self.proprio, self.vision if vision is None else vision], 1
        )
        return tokens, torch.cat([self.text_mask, self.proprio_mask, self.vision_mask], 1)


def _self_mask(mask: Tensor) -> Tensor:
    return mask[:, None, :] | torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)


@register_fusion("early")
class EarlyFusion(nn.Module):
    """Single stream: all tokens concatenated, then joint self-attention."""

    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.transformer = Transformer(dim, heads, layers)

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        tokens, mask = m.concat()
        return self.transformer(tokens, _self_mask(mask)), mask


class AttentionPool(nn.Module):
    """k learned queries summarise a token set."""

    def __init__(self, dim: int, heads: int, k: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(k, dim) * 0.02)
        self.cross = CrossAttention(dim, heads)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        q = self.queries.expand(x.shape[0], -1, -1)
        return self.cross(q, torch.ones(q.shape[:2], dtype=torch.bool, device=x.device), x, mask)


@register_fusion("late")
class LateFusion(nn.Module):
    """Per-modality streams that never see each other; each is summarised into a few tokens and
    only the summaries are combined (decision-level fusion)."""

    def __init__(self, dim: int, heads: int, layers: int, vision_summary: int = 8, text_summary: int = 2):
        super().__init__()
        self.vision = Transformer(dim, heads, layers)
        self.text = Transformer(dim, heads, layers)
        self.vision_pool = AttentionPool(dim, heads, vision_summary)
        self.text_pool = AttentionPool(dim, heads, text_summary)

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        vision = self.vision_pool(self.vision(m.vision, _self_mask(m.vision_mask)), m.vision_mask)
        text = self.text_pool(self.text(m.text, _self_mask(m.text_mask)), m.text_mask)
        tokens = torch.cat([text, m.proprio, vision], 1)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


@register_fusion("cross")
class CrossFusion(nn.Module):
    """Vision tokens query the instruction (text conditions what the model looks at)."""

    layer_cls = CrossAttention

    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(self.layer_cls(dim, heads) for _ in range(layers))

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        vision = m.vision
        for layer in self.layers:
            vision = layer(vision, m.vision_mask, m.text, m.text_mask)
        return m.concat(vision=vision)


@register_fusion("gated")
class GatedFusion(nn.Module):
    """Flamingo-style mid fusion: tanh-gated cross-attention to the text (gates start closed)
    interleaved with vision self-attention."""

    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.cross = nn.ModuleList(GatedCrossAttention(dim, heads) for _ in range(layers))
        self.self_attn = nn.ModuleList(Block(dim, heads) for _ in range(layers))

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        vision, mask = m.vision, _self_mask(m.vision_mask)
        for cross, block in zip(self.cross, self.self_attn):
            vision = block(cross(vision, m.vision_mask, m.text, m.text_mask), mask)
        return m.concat(vision=vision)


@register_fusion("bidir")
class BidirectionalFusion(nn.Module):
    """Vision and text attend to each other simultaneously, layer after layer."""

    layer_cls = BidirectionalCrossAttention

    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(self.layer_cls(dim, heads) for _ in range(layers))

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        vision, text = m.vision, m.text
        for layer in self.layers:
            vision, text = layer(vision, m.vision_mask, text, m.text_mask)
        return m.concat(vision=vision, text=text)


@register_fusion("co")
class CoAttentionFusion(BidirectionalFusion):
    """Alternating co-attention: vision attends to text, then text to the updated vision."""

    layer_cls = CoAttention


@register_fusion("hybrid")
class HybridFusion(nn.Module):
    """Two-stream cross-attention first, then single-stream joint self-attention."""

    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.cross = CrossFusion(dim, heads, max(1, layers // 2))
        self.joint = Transformer(dim, heads, max(1, layers - layers // 2))

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        tokens, mask = self.cross(m)
        return self.joint(tokens, _self_mask(mask)), mask


@register_fusion("cross_channel")
class CrossChannelFusion(nn.Module):
    """Each camera and the text are channels; each attends to the union of the others."""

    def __init__(self, dim: int, heads: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(CrossChannelAttention(dim, heads) for _ in range(layers))

    def forward(self, m: Modalities) -> tuple[Tensor, Tensor]:
        channels = list(m.vision.chunk(m.cameras, dim=1)) + [m.text]
        masks = list(m.vision_mask.chunk(m.cameras, dim=1)) + [m.text_mask]
        for layer in self.layers:
            channels = layer(channels, masks)
        return m.concat(vision=torch.cat(channels[:-1], 1), text=channels[-1])
