"""Vision and proprioception encoders (text lives in text.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_policy.models.layers import Transformer


class SpatialSoftmax(nn.Module):
    """(B, K, H, W) feature maps -> (B, 2K) expected (x, y) of each map's softmax, in [-1, 1]:
    robomimic's keypoints, precise to a fraction of a feature-map cell."""

    def forward(self, x: Tensor) -> Tensor:
        b, k, h, w = x.shape
        attn = x.flatten(2).softmax(-1).view(b, k, h, w)
        ys = torch.linspace(-1, 1, h, device=x.device)
        xs = torch.linspace(-1, 1, w, device=x.device)
        return torch.cat([(attn.sum(2) * xs).sum(-1), (attn.sum(3) * ys).sum(-1)], dim=-1)


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al. 2018) of a (B, F, H, W) feature map by a (B, D)
    condition: x * (1 + gamma) + beta. Zero-initialised, so it starts as the identity."""

    def __init__(self, condition_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(condition_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        gamma, beta = self.proj(condition)[:, :, None, None].chunk(2, dim=1)  # (B, F, 1, 1) each
        return x * (1 + gamma) + beta


INITIAL_SHARPNESS = 10.0


class InstructedKeypoints(nn.Module):
    """Keypoints the instruction chooses: the condition becomes K queries over the (B, F, H, W)
    feature map; each query's softmax over positions gives the expected (x, y) of what it matches
    and the features found there (CLIPort's language-conditioned attention, read out as keypoints).
    "the red cube" can then select red pixels with one dot product instead of having to be bound
    through FiLM and a transformer. -> (B, K * (2 + F)): the keypoints' (x, y) in [-1, 1] and
    features."""

    def __init__(self, condition_dim: int, channels: int, count: int):
        super().__init__()
        self.count, self.channels = count, channels
        self.query = nn.Linear(condition_dim, count * channels)
        self.key = nn.Conv2d(channels, channels, 1)
        # Cosine similarity at a learned sharpness, started sharp: with raw dot products at the usual
        # initialisation every query starts uniform over the image and the binding plateaus for
        # hundreds of steps at lr 3e-4 (docs/RESULTS.md).
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(INITIAL_SHARPNESS))))

    def forward(self, features: Tensor, condition: Tensor) -> Tensor:
        b, f, h, w = features.shape
        query = F.normalize(self.query(condition).view(b, self.count, f), dim=-1)  # (B, K, F)
        keys = F.normalize(self.key(features).flatten(2), dim=1)  # (B, F, H*W)
        attn = (self.log_scale.exp() * torch.einsum("bkf,bfn->bkn", query, keys)).softmax(-1)  # (B, K, H*W)
        ys, xs = torch.meshgrid(
            torch.linspace(-1, 1, h, device=features.device),
            torch.linspace(-1, 1, w, device=features.device),
            indexing="ij",
        )
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=-1)  # (H*W, 2)
        xy = attn @ grid  # (B, K, 2)
        found = torch.einsum("bkn,bfn->bkf", attn, features.flatten(2))  # (B, K, F)
        return torch.cat([xy, found], dim=-1).flatten(1)


class ConvPatchStem(nn.Module):
    """Patchify with a small strided conv stack instead of one linear patch projection: the same
    (S/p)^2 tokens as a ViT, but far more sample-efficient on small robot datasets. Also returns
    the stride-4 feature map, fine enough to locate a cube to a pixel. With `film`, a condition
    vector modulates every hidden conv layer (RT-1 and BC-Z condition their image encoders on the
    instruction so: the features, and the keypoints read from them, become the named object's)."""

    def __init__(self, dim: int, patch_size: int, film: bool = False):
        super().__init__()
        if patch_size not in (4, 8, 16):
            raise ValueError(f"patch_size must be 4, 8 or 16, got {patch_size}")
        convs = {4: 2, 8: 3, 16: 4}[patch_size]
        layers, channels = [], 3
        for i in range(convs):
            out = dim if i == convs - 1 else min(dim, 32 * 2**i)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(1, out), nn.GELU()]
            channels = out
        self.net = nn.Sequential(*layers[:-2])  # no norm/activation after the last conv
        self.stride4_index = min(5, len(self.net) - 1)  # the second conv's activation (or the output)
        self.stride4_channels = self.net[3].out_channels
        # One FiLM after each hidden conv's activation (net indices 2, 5, ...), keyed by that index.
        self.films = (
            nn.ModuleDict({str(i): FiLM(dim, self.net[i - 2].out_channels) for i in range(2, len(self.net), 3)})
            if film
            else None
        )

    def forward(self, images: Tensor, condition: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(B, 3, S, S) in [0, 1], optional (B, D) condition -> (B, N, D) patch tokens,
        (B, F, S/4, S/4) stride-4 features. Without a condition a FiLM stem is not modulated."""
        if condition is not None and self.films is None:
            raise ValueError("this stem was built without FiLM; it takes no condition")
        x = images * 2.0 - 1.0
        for i, layer in enumerate(self.net):
            x = layer(x)
            if condition is not None and str(i) in self.films:
                x = self.films[str(i)](x, condition)
            if i == self.stride4_index:
                features = x
        return x.flatten(2).transpose(1, 2), features


class VisionEncoder(nn.Module):
    """Shared-weight ViT over each camera, plus a learned camera embedding per camera. With
    `keypoints` > 0 each camera also gets one keypoint token: the spatial-softmax (x, y) of that
    many learned stride-4 feature maps, projected to D (patch tokens alone are as coarse as a patch).
    With `film` the conv stem is modulated by a (B, D) condition (the instruction); with
    `instructed_keypoints` > 0 each camera gets one more token: that many keypoints the condition
    chooses (InstructedKeypoints; without a condition their queries are the instruction-free bias)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        layers: int,
        image_size: int,
        patch_size: int,
        cameras: int,
        keypoints: int = 0,
        film: bool = False,
        instructed_keypoints: int = 0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_tokens = (image_size // patch_size) ** 2 + (1 if keypoints else 0)  # through the transformer
        self.tokens_per_camera = self.patch_tokens + (1 if instructed_keypoints else 0)
        self.stem = ConvPatchStem(dim, patch_size, film)
        channels = self.stem.stride4_channels
        self.instructed = (
            nn.ModuleDict(
                {
                    "find": InstructedKeypoints(dim, channels, instructed_keypoints),
                    "project": nn.Linear(instructed_keypoints * (2 + channels), dim),
                }
            )
            if instructed_keypoints
            else None
        )
        self.keypoints = (
            nn.Sequential(
                nn.Conv2d(self.stem.stride4_channels, keypoints, 1), SpatialSoftmax(), nn.Linear(2 * keypoints, dim)
            )
            if keypoints
            else None
        )
        self.position = nn.Parameter(torch.randn(self.patch_tokens, dim) * 0.02)
        self.camera = nn.Parameter(torch.randn(cameras, dim) * 0.02)
        self.transformer = Transformer(dim, heads, layers)

    @property
    def conditioned(self) -> bool:
        """Whether the instruction conditions this encoder (FiLM or instructed keypoints)."""
        return self.stem.films is not None or self.instructed is not None

    def forward(
        self,
        images: Tensor,
        camera_mask: Tensor | None = None,
        condition: Tensor | None = None,
        with_features: bool = False,
    ):
        """(B, C, 3, S, S), optional (B, D) condition -> tokens (B, C*N, D), mask (B, C*N); a missing
        camera's tokens are masked. `with_features` also returns the stem's (B*C, F, S/4, S/4)
        stride-4 features (instructed_tokens can reuse them for another condition without FiLM)."""
        b, c = images.shape[:2]
        if condition is not None:
            if not self.conditioned:
                raise ValueError("this encoder was built without FiLM or instructed keypoints; it takes no condition")
            condition = condition.repeat_interleave(c, dim=0)  # (B*C, D), one per camera image
        film = condition if self.stem.films is not None else None
        x, features = self.stem(images.flatten(0, 1), film)  # (B*C, N', D), (B*C, F, S/4, S/4)
        if self.keypoints is not None:
            x = torch.cat([x, self.keypoints(features)[:, None]], dim=1)  # (B*C, N' + 1, D)
        x = self.transformer(x + self.position)
        if self.instructed is not None:  # appended after the patch transformer: a direct path to the keypoints
            x = torch.cat([x, self._instructed_token(features, condition)[:, None]], dim=1)
        x = x.view(b, c, self.tokens_per_camera, -1) + self.camera[None, :, None]
        if camera_mask is None:
            camera_mask = torch.ones(b, c, dtype=torch.bool, device=images.device)
        mask = camera_mask[:, :, None].expand(b, c, self.tokens_per_camera)
        return (x.flatten(1, 2), mask.flatten(1), features) if with_features else (x.flatten(1, 2), mask.flatten(1))

    def instructed_tokens(self, images: Tensor, condition: Tensor, features: Tensor | None = None) -> Tensor:
        """(B, C, 3, S, S), (B, D) condition -> (B, C, D) each camera's instructed-keypoint token
        alone (the same token `forward` returns last per camera, for another condition). Without
        FiLM the stem does not depend on the condition: `forward`'s features of the same images
        can be passed in instead of running the stem again."""
        b, c = images.shape[:2]
        condition = condition.repeat_interleave(c, dim=0)  # (B*C, D)
        if features is None or self.stem.films is not None:
            _, features = self.stem(images.flatten(0, 1), condition if self.stem.films is not None else None)
        return self._instructed_token(features, condition).view(b, c, -1) + self.camera[None]

    def _instructed_token(self, features: Tensor, condition: Tensor | None) -> Tensor:
        """(B*C, F, S/4, S/4), (B*C, D) or None -> (B*C, D)."""
        if condition is None:
            condition = features.new_zeros(features.shape[0], self.camera.shape[-1])
        return self.instructed["project"](self.instructed["find"](features, condition))


class ProprioEncoder(nn.Sequential):
    """(B, P) normalised proprioception -> (B, 1, D) one token."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, proprio: Tensor) -> Tensor:
        return super().forward(proprio)[:, None]
