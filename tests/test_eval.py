"""Evaluation runner and its statistics."""

from __future__ import annotations

import pytest

from sim.env import EnvConfig
from vla_policy.eval.metrics import wilson_interval
from vla_policy.eval.runner import POLICIES, evaluate, register_policy


@pytest.mark.parametrize(
    "successes, trials, low, high",
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (95, 100, 0.8883, 0.9785)],
)
def test_wilson_known_answers(successes, trials, low, high):
    lo, hi = wilson_interval(successes, trials)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_expert_through_the_runner():
    report = evaluate(EnvConfig(task="pick", cameras=()), {"kind": "expert"}, episodes=2, seed=1_000_000)
    assert report["overall"]["successes"] == 2
    assert report["named_object"]["rate"] == 1.0
    assert [r["seed"] for r in report["episodes"]] == [1_000_000, 1_000_001]
    assert all(r["inference_ms_p50"] is not None for r in report["episodes"])


def test_failing_policy_is_reported_not_lost():
    @register_policy("broken")
    def _broken(env):
        class Broken:
            def reset(self):
                pass

            def select_action(self, obs):
                raise RuntimeError("model exploded")

        return Broken()

    try:
        report = evaluate(EnvConfig(task="lift", cameras=()), {"kind": "broken"}, episodes=2)
    finally:
        POLICIES.pop("broken")
    assert report["errors"] == 2 and report["overall"]["successes"] == 0
    assert "RuntimeError: model exploded" in report["episodes"][0]["error"]


def test_unknown_policy_kind():
    with pytest.raises(ValueError, match="unknown policy kind 'expret'.*did you mean 'expert'"):
        evaluate(EnvConfig(task="lift", cameras=()), {"kind": "expret"}, episodes=1)
