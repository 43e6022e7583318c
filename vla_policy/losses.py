"""Loss functions: the action chunk's mean, and the auxiliary image-text alignment objectives:
contrastive InfoNCE (CLIP, Radford et al. 2021), triplet with the hardest in-batch negatives
(VSE++, Faghri et al. 2018), alignment and uniformity on the hypersphere (Wang & Isola 2020) and
Sinkhorn optimal transport (Cuturi 2013). Inputs are L2-normalised unless said otherwise. Masked
patch modelling needs the model's own fusion and lives in the model (VLAModel._masked_patch_loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """(B, N, D), (B, N) -> (B, D) mean over valid tokens (zeros when none are valid)."""
    w = mask.float()[..., None]
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def chunk_mean(err: Tensor, mask: Tensor) -> Tensor:
    """(B, H) per-step errors, (B, H) valid steps -> scalar mean over every step of the batch, the
    padded ones (past an episode's end) counting as zero (LeRobot's convention). Every sample
    weighs the same whatever its padding, so the mean of per-rank losses that DDP's gradient
    averaging takes is the global batch's loss."""
    return (err * mask).sum() / mask.numel()


def same_instruction(text_ids: Tensor) -> Tensor:
    """(B, L) -> (B, B) bool: pairs with identical instructions (positives, never negatives)."""
    return (text_ids[:, None, :] == text_ids[None, :, :]).all(-1)


def info_nce(image: Tensor, text: Tensor, scale: Tensor | float, positives: Tensor | None = None) -> Tensor:
    """Symmetric CLIP loss. (B, D), (B, D); `positives` (B, B) marks extra positive pairs (duplicate
    instructions in a batch), whose probability mass is pooled instead of being pushed apart."""
    logits = scale * image @ text.T  # (B, B)
    pos = torch.eye(len(image), dtype=torch.bool, device=image.device) if positives is None else positives
    pos = pos | torch.eye(len(image), dtype=torch.bool, device=image.device)

    def directional(lg: Tensor, p: Tensor) -> Tensor:
        return -(torch.logsumexp(lg.masked_fill(~p, float("-inf")), 1) - torch.logsumexp(lg, 1)).mean()

    return 0.5 * (directional(logits, pos) + directional(logits.T, pos.T))


def triplet_hard(anchor: Tensor, positive: Tensor, same: Tensor | None = None, margin: float = 0.2) -> Tensor:
    """Triplet loss with the hardest in-batch negative per anchor (cosine distance)."""
    sim = anchor @ positive.T  # (B, B)
    invalid = torch.eye(len(anchor), dtype=torch.bool, device=anchor.device)
    if same is not None:
        invalid = invalid | same
    hardest_negative = sim.masked_fill(invalid, float("-inf")).max(1).values
    has_negative = torch.isfinite(hardest_negative)
    loss = F.relu(margin - sim.diagonal() + hardest_negative)
    return loss[has_negative].mean() if has_negative.any() else sim.sum() * 0


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """Wang & Isola: positives close. (B, D), (B, D) normalised."""
    return (x - y).norm(dim=1).pow(alpha).mean()


def uniformity(x: Tensor, t: float = 2.0) -> Tensor:
    """Wang & Isola: embeddings spread over the sphere (log mean Gaussian potential)."""
    if len(x) < 2:
        return x.sum() * 0
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


def sinkhorn(cost: Tensor, reg: float = 0.1, iters: int = 50) -> Tensor:
    """Entropic OT plan for (B, N, M) costs with uniform marginals, in log space for stability."""
    b, n, m = cost.shape
    log_k = -cost / reg
    log_a = torch.full((b, n), -torch.log(torch.tensor(float(n))), device=cost.device)
    log_b = torch.full((b, m), -torch.log(torch.tensor(float(m))), device=cost.device)
    u = torch.zeros_like(log_a)
    v = torch.zeros_like(log_b)
    for _ in range(iters):
        u = log_a - torch.logsumexp(log_k + v[:, None, :], dim=2)
        v = log_b - torch.logsumexp(log_k + u[:, :, None], dim=1)
    return (u[:, :, None] + log_k + v[:, None, :]).exp()  # (B, N, M), rows sum to 1/N


def sinkhorn_alignment_loss(
    patches: Tensor, patch_mask: Tensor, words: Tensor, word_mask: Tensor, reg: float = 0.1
) -> Tensor:
    """OT distance between patch and word features (cosine cost), padding given infinite-ish cost."""
    p, w = F.normalize(patches, dim=-1), F.normalize(words, dim=-1)
    cost = 1 - p @ w.transpose(1, 2)  # (B, N, M) in [0, 2]
    invalid = ~(patch_mask[:, :, None] & word_mask[:, None, :])
    cost = cost.masked_fill(invalid, 4.0)
    plan = sinkhorn(cost.detach(), reg)
    return (plan * cost).masked_fill(invalid, 0).sum((1, 2)).mean()
