"""Auxiliary objectives on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from vla_policy import losses as L


def test_info_nce_known_answer():
    e = torch.eye(3)
    expected = math.log(1 + 2 * math.exp(-10))
    assert float(L.info_nce(e, e, 10.0)) == pytest.approx(expected, abs=1e-6)
    # swapping two texts makes those pairs wrong: the loss grows
    assert float(L.info_nce(e, e[[1, 0, 2]], 10.0)) > 5


def test_info_nce_duplicate_instructions_are_not_negatives():
    image = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = image.clone()
    same = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    with_mask = float(L.info_nce(image, text, 10.0, same))
    without = float(L.info_nce(image, text, 10.0))
    assert with_mask == pytest.approx(math.log(1 + math.exp(-10) / 2), abs=1e-4)
    # without the mask the two duplicates split their probability: 2 of 3 rows lose log 2
    assert without == pytest.approx(2 * math.log(2) / 3, abs=1e-3)


def test_same_instruction():
    ids = torch.tensor([[1, 2], [1, 2], [3, 4]])
    assert L.same_instruction(ids).tolist() == [[True, True, False], [True, True, False], [False, False, True]]


def test_triplet_known_answers():
    e = torch.eye(3)
    assert float(L.triplet_hard(e, e)) == 0.0
    anchor = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    positive = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.43589]]), dim=-1)
    # anchor 0: pos sim 1, hardest neg 0.9 -> relu(0.2 - 1 + 0.9) = 0.1; anchor 1: pos 0.43589, neg 0 -> 0
    assert float(L.triplet_hard(anchor, positive)) == pytest.approx(0.05, abs=1e-4)


def test_alignment_and_uniformity_known_answers():
    x = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    assert float(L.alignment(x, x)) == 0.0
    antipodal = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert float(L.uniformity(antipodal)) == pytest.approx(-8.0)
    clumped = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert float(L.uniformity(clumped)) == pytest.approx(0.0)


def test_sinkhorn_marginals_and_matching():
    cost = 1 - torch.eye(4)[None] + 0.01 * torch.rand(1, 4, 4)
    plan = L.sinkhorn(cost, reg=0.02, iters=200)
    torch.testing.assert_close(plan.sum(2), torch.full((1, 4), 0.25), atol=1e-4, rtol=0)
    torch.testing.assert_close(plan.sum(1), torch.full((1, 4), 0.25), atol=1e-4, rtol=0)
    assert torch.equal(plan[0].argmax(1), torch.arange(4))


def test_sinkhorn_alignment_loss_zero_for_identical_sets():
    feats = torch.nn.functional.normalize(torch.eye(4)[None] * 5, dim=-1)
    mask = torch.ones(1, 4, dtype=torch.bool)
    assert float(L.sinkhorn_alignment_loss(feats, mask, feats, mask, reg=0.02)) == pytest.approx(0.0, abs=1e-3)
    # words opposite to their own patch: OT routes every patch to another word at cosine cost 1
    assert float(L.sinkhorn_alignment_loss(feats, mask, -feats, mask, reg=0.02)) == pytest.approx(1.0, abs=1e-3)


def test_masked_mean_ignores_padding():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert float(L.masked_mean(x, torch.tensor([[True, True, False]]))) == 2.0
