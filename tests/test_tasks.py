"""Tasks: instruction sets, language dependence, and scripted experts that succeed."""

from __future__ import annotations

import numpy as np
import pytest

from sim.env import EnvConfig, SimEnv
from sim.expert_policy import ExpertPolicy
from sim.tasks import TASKS, get_task
from vla_policy.eval.rollout import rollout

EXPERT_SEEDS = {"lift": [0, 1], "pick": [0, 1], "stack": [0], "push": [0, 1], "tabletop": [2]}


@pytest.mark.parametrize(
    "task", sorted(n for n, t in TASKS.items() if t.env_type == "robosuite")
)  # Meta-World: test_metaworld.py
def test_expert_succeeds(task):
    with SimEnv(EnvConfig(task=task, cameras=())) as env:
        for seed in EXPERT_SEEDS[task]:
            ep = rollout(env, ExpertPolicy(env), seed=seed, record_obs=False)
            assert ep.success, f"{task} expert failed on seed {seed}: {ep.instruction!r}"
            assert len(ep) < env.horizon


def test_language_family_lists_and_samples_both_splits():
    family = get_task("tabletop")
    train, heldout = family.instructions("train"), family.instructions("heldout")
    assert len(set(train)) >= 60
    assert not set(train) & set(heldout)
    assert {family.parse(t).skill for t in train} == {"pick", "stack", "push"}
    assert {family.parse(t).target for t in train} == {"red", "green", "blue", "yellow"}
    rng = np.random.default_rng(0)
    drawn = [family.sample_goal(rng, "heldout").instruction for _ in range(50)]
    assert len(set(drawn)) > 40 and all(family.grammar.parse(t)[1] == "heldout" for t in drawn)


def test_parse_normalizes_and_rejects_unknown():
    family = get_task("tabletop")
    assert family.parse("  Put the RED cube on the blue cube. ").place_on == "blue"
    with pytest.raises(ValueError, match="does not know the instruction"):
        family.parse("make me a sandwich")


def test_same_scene_different_instruction_needs_different_behaviour():
    """Doing what one instruction asks does not satisfy another in the same scene."""
    with SimEnv(EnvConfig(task="tabletop", cameras=())) as env:
        ep = rollout(env, ExpertPolicy(env), seed=11, instruction="pick up the red cube", record_obs=False)
        assert ep.success
        for other in ("pick up the blue cube", "push the red cube to the left", "put the red cube on the green cube"):
            assert not env.task.is_success(env, env.task.parse(other)), other
        assert env.task.acted_object(env, env.start_positions) == "red"
        other = rollout(env, ExpertPolicy(env), seed=11, instruction="pick up the blue cube", record_obs=False)
        assert env.task.acted_object(env, env.start_positions) == "blue"
        assert not np.allclose(ep.actions[: len(other)][:20], other.actions[:20])


def test_expert_noise_changes_actions_but_not_outcome():
    with SimEnv(EnvConfig(task="pick", cameras=())) as env:
        clean = rollout(env, ExpertPolicy(env), seed=4, record_obs=False)
        noisy = rollout(env, ExpertPolicy(env, noise_std=0.1), seed=4, record_obs=False)
        assert clean.success and noisy.success
        n = min(len(clean), len(noisy))
        assert not np.allclose(clean.actions[:n], noisy.actions[:n])


@pytest.mark.parametrize("task", ["lift", "stack"])
def test_state_following_expert_succeeds_and_labels_from_the_state(task):
    """DAgger's labeller: the same expert, its phase re-derived from the state every step."""
    with SimEnv(EnvConfig(task=task, cameras=())) as env:
        assert rollout(env, ExpertPolicy(env, follow_state=True), seed=0, record_obs=False).success
        obs = env.reset(seed=0)
        for follow_state, gripper in ((False, 1.0), (True, -1.0)):
            expert = ExpertPolicy(env, follow_state=follow_state)
            expert.reset()
            expert.expert.phase = "lift"  # a memory that is wrong: nothing is held at the start
            assert expert.select_action(obs)[6] == gripper  # the state-following one opens and approaches
