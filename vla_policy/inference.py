"""Inference modes: single-step action, open-loop sequence, image-text similarity,
zero-shot instruction choice, cross-modal retrieval (Recall@K) and missing-modality degradation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vla_policy.losses import masked_mean
from vla_policy.models.text import tokenize
from vla_policy.models.vla import VLAModel
from vla_policy.policy import Policy


def single_step_action(policy: Policy, obs: dict, instruction: str | None = None) -> np.ndarray:
    """(A,) the first action of a freshly predicted chunk (no queue, no ensembling)."""
    return policy.predict_chunk(obs, instruction).actions[0]


def open_loop_sequence(policy: Policy, obs: dict, instruction: str | None = None) -> np.ndarray:
    """(H, A) the whole chunk, to be executed without re-planning."""
    return policy.predict_chunk(obs, instruction).actions


@torch.no_grad()
def embed(model: VLAModel, batch: dict) -> tuple[Tensor, Tensor]:
    """(B, D) image and (B, D) text embeddings, L2-normalised (through the contrastive heads when
    the model was trained with them, else the pooled encoder features)."""
    m = model.encode(batch)
    image, text = masked_mean(m.vision, m.vision_mask), masked_mean(m.text, m.text_mask)
    if hasattr(model, "image_proj"):
        image, text = model.image_proj(image), model.text_proj(text)
    return F.normalize(image, dim=-1), F.normalize(text, dim=-1)


@torch.no_grad()
def image_text_similarity(model: VLAModel, batch: dict) -> Tensor:
    """(B, B) cosine similarity of every image (row) with every instruction (column)."""
    image, text = embed(model, batch)
    return image @ text.T


@torch.no_grad()
def zero_shot_choice(model: VLAModel, batch: dict, candidates: list[str]) -> tuple[int, Tensor]:
    """Which candidate instruction best matches the (single) observation; -> (index, (K,) scores)."""
    if not candidates:
        raise ValueError("zero_shot_choice needs at least one candidate instruction")
    ids, mask = tokenize(candidates, model.config.text.max_tokens)
    k = len(candidates)
    expanded = {key: (v.expand(k, *v.shape[1:]) if torch.is_tensor(v) else v) for key, v in batch.items()}
    expanded.update(text_ids=ids.to(batch["proprio"].device), text_mask=mask.to(batch["proprio"].device))
    image, text = embed(model, expanded)
    scores = (image[0:1] @ text.T)[0]
    return int(scores.argmax()), scores


def recall_at_k(similarity: Tensor, positives: Tensor, ks=(1, 5, 10)) -> dict[str, float]:
    """Retrieval Recall@K in both directions. similarity (N, M): query rows vs candidate columns;
    positives (N, M) bool marks correct matches (several texts may be identical instructions)."""
    out = {}
    for name, sim, pos in (("image_to_text", similarity, positives), ("text_to_image", similarity.T, positives.T)):
        order = sim.argsort(dim=1, descending=True)
        hits = torch.gather(pos, 1, order)  # (N, M) positives in ranked order
        for k in ks:
            out[f"{name}_R@{k}"] = float(hits[:, : min(k, hits.shape[1])].any(1).float().mean())
    return out


def missing_modality_degradation(policy: Policy, samples: list[tuple[dict, np.ndarray]]) -> dict[str, float]:
    """Mean absolute action error (vs the demonstrated chunk) with everything, without each camera,
    and without the instruction. `samples`: (observation dict, (H, A) true actions). The policy is
    reset before each condition, so every condition sees the same sampling noise and a rerun gives
    the same numbers."""
    if not samples:
        raise ValueError("missing_modality_degradation needs at least one sample")
    conditions = {"all": lambda o: o, "no_text": lambda o: {**o, "instruction": ""}}
    for cam in policy.config.model.vision.cameras:
        conditions[f"no_{cam}"] = lambda o, cam=cam: {k: v for k, v in o.items() if k != f"{cam}_image"}
    result = {}
    for name, degrade in conditions.items():
        errors = []
        policy.reset()
        for obs, truth in samples:
            pred = policy.predict_chunk(degrade(obs)).actions[: len(truth)]
            errors.append(np.abs(pred - truth[: len(pred)]).mean())
        result[name] = float(np.mean(errors))
    return result
