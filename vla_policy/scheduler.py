"""ActionScheduler: plays predicted chunks at any control rate, blending where they overlap.

A chunk is anchored at the time of the observation it was predicted from; its action i is meant
for the interval [start + i*dt, start + (i+1)*dt). At a control tick at time t every queued chunk
that covers t offers one action; they are blended with ACT's exponential weights (older chunks
weigh exp(-m * age_rank)), so chunk boundaries do not jump. A control loop faster than the
dataset's period plays each action for several ticks (sample and hold); a slower one skips.
Time may be control steps * dt (closed-loop eval) or seconds from a ROS clock (policy_node):
the same code serves both.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from vla_policy.types import ActionChunk


@dataclass
class _Queued:
    chunk: ActionChunk
    start: float  # seconds

    @property
    def end(self) -> float:
        return self.start + len(self.chunk) * self.chunk.dt

    def action_at(self, t: float) -> np.ndarray:
        index = int(np.floor((t - self.start) / self.chunk.dt + 1e-9))
        return self.chunk.actions[min(max(index, 0), len(self.chunk) - 1)]


class ActionScheduler:
    def __init__(self, ensemble_decay: float = 0.1, ensemble_gripper: bool = False):
        """`ensemble_gripper`: blend the last (gripper) dimension too. The gripper is binary in the
        demonstrations, so by default the newest chunk decides it (a blend hovers half-open)."""
        self.ensemble_decay, self.ensemble_gripper = ensemble_decay, ensemble_gripper
        self.queue: deque[_Queued] = deque()

    def reset(self) -> None:
        self.queue.clear()

    def add(self, chunk: ActionChunk, start: float) -> None:
        """Queue a chunk predicted from the observation taken at time `start` (seconds)."""
        if self.queue and start < self.queue[-1].start:
            raise ValueError(f"chunks must arrive in time order: {start} < {self.queue[-1].start}")
        self.queue.append(_Queued(chunk, float(start)))

    def horizon(self) -> float:
        """The time up to which queued chunks hold actions (-inf when empty)."""
        return self.queue[-1].end if self.queue else -np.inf

    def action_at(self, t: float) -> np.ndarray | None:
        """(A,) the blended action for time t, or None when no queued chunk covers t."""
        while self.queue and self.queue[0].end <= t:
            self.queue.popleft()
        covering = [q for q in self.queue if q.start <= t + 1e-9]
        if not covering:
            return None
        preds = np.stack([q.action_at(t) for q in covering])  # (K, A) oldest first
        weights = np.exp(-self.ensemble_decay * np.arange(len(preds)))
        action = (weights[:, None] * preds).sum(0) / weights.sum()
        if not self.ensemble_gripper:
            action[-1] = preds[-1, -1]
        return action
