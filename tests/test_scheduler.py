"""ActionScheduler: time-indexed playback and temporal ensembling of action chunks."""

import numpy as np
import pytest

from vla_policy.scheduler import ActionScheduler, rtc_weights
from vla_policy.types import ActionChunk


def _chunk(value: float, length: int = 4, dt: float = 0.05) -> ActionChunk:
    actions = np.full((length, 7), value)
    actions[:, 0] = value + np.arange(length)  # dimension 0 tells which index was played
    return ActionChunk(actions, dt)


def test_actions_are_indexed_by_time_and_held_between_dataset_steps():
    scheduler = ActionScheduler()
    scheduler.add(_chunk(0.0), start=1.0)
    assert scheduler.action_at(0.99) is None  # before the observation it was predicted from
    # a 50 Hz loop over a 20 Hz chunk plays each action for 2-3 ticks
    played = [scheduler.action_at(1.0 + k * 0.02)[0] for k in range(10)]
    assert played == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert scheduler.action_at(1.2) is None and not scheduler.queue  # past its end: dropped


@pytest.mark.parametrize("ensemble_gripper", [False, True])
def test_arm_is_blended_and_gripper_comes_from_the_newest_chunk(ensemble_gripper):
    scheduler = ActionScheduler(ensemble_decay=0.1, ensemble_gripper=ensemble_gripper)
    scheduler.add(ActionChunk(np.full((4, 7), 0.5), 0.05), start=0.0)
    scheduler.add(ActionChunk(np.full((4, 7), -0.5), 0.05), start=0.05)
    action = scheduler.action_at(0.05)  # old chunk says +0.5, new chunk says -0.5
    w_old, w_new = 1.0, np.exp(-0.1)
    blend = (0.5 * w_old - 0.5 * w_new) / (w_old + w_new)
    assert np.allclose(action[:6], blend)
    assert action[6] == pytest.approx(blend if ensemble_gripper else -0.5)


def test_chunks_out_of_time_order_are_refused():
    scheduler = ActionScheduler()
    scheduler.add(_chunk(0.0), start=1.0)
    with pytest.raises(ValueError, match="time order"):
        scheduler.add(_chunk(0.0), start=0.5)


def _stream(join: str) -> list[float]:
    """Two 4-step chunks 0.1 s apart (0.0, 0.1, 0.2, 0.3) and (1.0, 1.1, ...) from 0.1 s later,
    played at their own 0.05 s period from 0 to 0.3 s: dimension 0 of each action played."""
    scheduler = ActionScheduler(ensemble_decay=0.5, join=join)
    first = np.zeros((4, 7))
    first[:, 0] = [0.0, 0.1, 0.2, 0.3]
    second = np.zeros((4, 7))
    second[:, 0] = [1.0, 1.1, 1.2, 1.3]
    scheduler.add(ActionChunk(first, 0.05), start=0.0)
    played = [scheduler.action_at(0.0)[0], scheduler.action_at(0.05)[0]]
    scheduler.add(ActionChunk(second, 0.05), start=0.1)
    played += [scheduler.action_at(t)[0] for t in (0.1, 0.15, 0.2, 0.25)]
    return played


def test_each_join_strategy_gives_its_exact_joins():
    w = np.exp(-0.5)  # the newer chunk's weight where both cover a step
    ensembled = [0.0, 0.1, (0.2 + w * 1.0) / (1 + w), (0.3 + w * 1.1) / (1 + w), 1.2, 1.3]
    assert np.allclose(_stream("ensemble"), ensembled)
    assert np.allclose(_stream("switch"), [0.0, 0.1, 1.0, 1.1, 1.2, 1.3])
    assert np.allclose(_stream("rtc"), [0.0, 0.1, 1.0, 1.1, 1.2, 1.3])  # rtc plays the newest chunk
    with pytest.raises(ValueError, match="join must be one of"):
        ActionScheduler(join="blend")


def test_planned_is_what_will_play_and_drops_nothing():
    for join in ("ensemble", "rtc"):
        scheduler = ActionScheduler(join=join)
        scheduler.add(ActionChunk(np.random.default_rng(0).normal(size=(4, 7)), 0.05), start=0.0)
        scheduler.add(ActionChunk(np.random.default_rng(1).normal(size=(4, 7)), 0.05), start=0.1)
        planned = scheduler.planned(0.05, 6, 0.05)  # 0.05 .. 0.3 s; the chunks end at 0.3 s
        assert len(scheduler.queue) == 2
        assert np.isnan(planned[5]).all() and not np.isnan(planned[:5]).any()
        for i, t in enumerate(np.arange(5) * 0.05 + 0.05):
            assert np.array_equal(planned[i], scheduler.action_at(t))


def test_rtc_weights_freeze_then_decay_to_zero_past_the_overlap():
    weights = rtc_weights(frozen=3, overlap=10, horizon=16)
    assert np.all(weights[:3] == 1.0) and np.all(weights[10:] == 0.0)
    assert np.all(np.diff(weights[3:10]) < 0) and 0 < weights[9] < weights[3] < 1
    assert np.array_equal(rtc_weights(0, 0, 4), np.zeros(4))
