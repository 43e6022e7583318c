"""pi0-style flow matching over an action chunk.

x_t = t * noise + (1 - t) * actions, target velocity u = noise - actions, t ~ Beta(1.5, 1)
squeezed into [0.001, 1]. Sampling integrates from t = 1 (noise) to t = 0 in K Euler steps;
the prefix (context) keys/values are computed once and reused by every step.

Guided sampling (real-time chunking, Black et al. 2025, arXiv 2506.07339) inpaints a chunk so
that it continues actions already committed: at every step the velocity is corrected by the
vector-Jacobian product of the weighted error between those actions and the chunk the step
points at (pseudo-inverse guidance), its weight clipped at `max_weight`. No retraining.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vla_policy.losses import chunk_mean
from vla_policy.models.heads import register_head


def sincos_embedding(t: Tensor, dim: int, min_period: float = 4e-3, max_period: float = 4.0) -> Tensor:
    """(B,) times in [0, 1] -> (B, dim) sine/cosine features (pi0's posemb_sincos)."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, device=t.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = t[:, None] * (2 * math.pi / period[None])
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


@register_head("flow")
class FlowHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        d = config.d_model
        self.chunk, self.action_dim, self.steps = config.chunk, config.action_dim, config.flow_steps
        self.action_in = nn.Linear(config.action_dim, d)
        self.time_mlp = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d))
        self.position = nn.Parameter(torch.randn(config.chunk, d) * 0.02)
        self.action_out = nn.Linear(d, config.action_dim)

    def suffix(self, noisy: Tensor, t: Tensor) -> Tensor:
        """(B, H, A) noisy actions, (B,) time -> (B, H, D) suffix tokens (action + time, like pi0)."""
        tokens = self.action_in(noisy) + self.position
        time = sincos_embedding(t, tokens.shape[-1]).unsqueeze(1).expand_as(tokens)
        return self.time_mlp(torch.cat([tokens, time], dim=-1))

    def velocity(self, run_suffix, noisy: Tensor, t: Tensor) -> Tensor:
        return self.action_out(run_suffix(self.suffix(noisy, t)))  # (B, H, A)

    def loss(self, run_suffix, actions: Tensor, action_mask: Tensor) -> Tensor:
        """actions (B, H, A) normalised; action_mask (B, H) valid steps."""
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        t = torch.distributions.Beta(1.5, 1.0).sample((b,)).to(actions.device) * 0.999 + 0.001
        x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * actions
        v = self.velocity(run_suffix, x_t, t)
        err = F.mse_loss(v, noise - actions, reduction="none").mean(-1)  # (B, H)
        return chunk_mean(err, action_mask)  # (B, H) -> ()

    @torch.no_grad()
    def sample(
        self, run_suffix, batch: int, device, generator: torch.Generator | None = None, guide: "Guide | None" = None
    ) -> Tensor:
        """K Euler steps from noise -> (B, H, A) normalised actions; with `guide`, inpainted to
        continue its target."""
        x = torch.randn(batch, self.chunk, self.action_dim, device=device, generator=generator)
        dt = -1.0 / self.steps
        for k in range(self.steps):
            t = 1.0 + k * dt
            times = torch.full((batch,), t, device=device)
            v = self.velocity(run_suffix, x, times) if guide is None else self._guided(run_suffix, x, times, guide)
            x = x + dt * v
        return x

    def _guided(self, run_suffix, x: Tensor, times: Tensor, guide: "Guide") -> Tensor:
        """(B, H, A) velocity corrected toward guide.target where guide.weights are > 0."""
        t = float(times[0])
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            v = self.velocity(run_suffix, x, times)
            clean = x - t * v  # (B, H, A) the chunk this step points at (t = 1 is noise, 0 the data)
            error = (guide.target - clean) * guide.weights[None, :, None]
            correction = torch.autograd.grad(clean, x, error)[0]
        # RTC's weight min(beta, (1 - tau) / (tau r^2)), r^2 = (1 - tau)^2 / (tau^2 + (1 - tau)^2),
        # in its time tau = 1 - t; infinite at both ends, so clipped there.
        tau = 1.0 - t
        weight = guide.max_weight if tau <= 0 or t <= 0 else min(guide.max_weight, (tau**2 + t**2) / (tau * t))
        return (v - weight * correction).detach()  # tau's velocity is -v here: the correction's sign flips


class Guide:
    """What a guided chunk continues: target (B, H, A) normalised actions, weights (H,) per step
    (1: frozen, 0: free), and the guidance weight's clip (RTC's beta; the paper uses 5)."""

    def __init__(self, target: Tensor, weights: Tensor, max_weight: float = 5.0):
        self.target, self.weights, self.max_weight = target, weights, max_weight
