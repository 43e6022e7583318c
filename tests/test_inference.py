"""Inference modes, each on a case whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.model_utils import PROPRIO_DIM, fit, random_batch
from tests.test_policy import STATS, _obs
from vla_policy.config import load_config, merge
from vla_policy.inference import (
    image_text_similarity,
    missing_modality_degradation,
    open_loop_sequence,
    recall_at_k,
    single_step_action,
    zero_shot_choice,
)
from vla_policy.models.vla import VLAModel
from vla_policy.policy import Policy


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    config = merge(load_config("tiny"), {"model": {"aux": {"infonce": 1.0}}})
    return Policy(VLAModel(config.model, PROPRIO_DIM), config, STATS, device="cpu")


def test_single_step_and_open_loop_sequence_are_what_the_policy_plays_without_replanning(policy):
    """The first action select_action plays after a reset is the single-step action, and with one
    chunk per chunk length it plays the open-loop sequence row by row."""
    config = merge(policy.config, {"model": {"replan_every": policy.config.model.chunk}})
    playing = Policy(policy.model, config, STATS, device="cpu")
    obs = _obs()
    seq = open_loop_sequence(playing, obs)
    playing.reset()
    step = single_step_action(playing, obs)
    playing.reset()
    played = np.stack([playing.select_action(obs) for _ in range(config.model.chunk)])
    assert seq.shape == (config.model.chunk, 7)
    np.testing.assert_allclose(step, played[0], atol=1e-6)
    np.testing.assert_allclose(seq, played, atol=1e-6)


def test_recall_at_k_known_answers():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.1, 0.8], [0.0, 0.3, 0.7]])
    positives = torch.eye(3, dtype=torch.bool)
    r = recall_at_k(sim, positives, ks=(1, 2, 3))
    assert r["image_to_text_R@1"] == pytest.approx(2 / 3)  # rows 0 and 2 rank their match first
    assert r["image_to_text_R@2"] == pytest.approx(2 / 3)  # row 1's match is ranked last
    assert r["image_to_text_R@3"] == 1.0
    assert r["text_to_image_R@1"] == pytest.approx(1 / 3)  # column 1's best image is row 2


def test_similarity_choice_and_retrieval_after_contrastive_training(policy):
    """Train only the contrastive objective on 3 image/instruction pairs: similarity, zero-shot
    choice and retrieval must then all pick the matching instruction."""
    model = policy.model
    batch = random_batch(model.config, batch=3)
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    fit(model, batch, "infonce", optim, 60)
    model.eval()
    sim = image_text_similarity(model, batch)
    assert torch.equal(sim.argmax(1), torch.arange(3))
    texts = ["pick up the red cube", "push the blue cube to the left", "put the red cube on the green cube"]
    single = {k: v[1:2] for k, v in batch.items()}
    choice, scores = zero_shot_choice(model, single, texts)
    assert choice == 1 and scores.shape == (3,)
    assert recall_at_k(sim, torch.eye(3, dtype=torch.bool), ks=(1,))["image_to_text_R@1"] == 1.0
    with pytest.raises(ValueError, match="at least one candidate"):
        zero_shot_choice(model, single, [])


def test_missing_modality_degradation_reports_each_condition(policy):
    """Each condition sees the same sampling noise: an observation that already lacks its
    instruction scores exactly the same with and without it, and a rerun repeats every number."""
    truth = np.zeros((policy.config.model.chunk, 7))
    samples = [({**_obs(), "instruction": ""}, truth), ({**_obs(48), "instruction": ""}, truth)]
    result = missing_modality_degradation(policy, samples)
    assert set(result) == {"all", "no_text", "no_agentview", "no_wrist"}
    assert result["no_text"] == result["all"]  # nothing was removed: the same noise, the same chunks
    assert result["no_wrist"] != result["all"]  # removing a camera changes what the model does
    assert missing_modality_degradation(policy, samples) == result
    worded = [({**obs, "instruction": "pick up the red cube"}, t) for obs, t in samples]
    assert missing_modality_degradation(policy, worded)["no_text"] == result["all"]
