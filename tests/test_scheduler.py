"""ActionScheduler: time-indexed playback and temporal ensembling of action chunks."""

import numpy as np
import pytest

from vla_policy.scheduler import ActionScheduler
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
