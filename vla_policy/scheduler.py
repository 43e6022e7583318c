"""ActionScheduler: plays predicted chunks at any control rate, joining them where they overlap.

A chunk is anchored at the time of the observation it was predicted from; its action i is meant
for the interval [start + i*dt, start + (i+1)*dt). At a control tick at time t every queued chunk
that covers t offers one action, and the join strategy makes one of them:

- `ensemble`: ACT's temporal ensembling (older chunks weigh exp(-m * age_rank)).
- `switch`: the newest chunk alone (what a plain action queue does: jumps where chunks meet).
- `rtc`: the newest chunk alone, as `switch`; the chunk itself was inpainted to continue the one
  before it (real-time chunking, Black et al. 2025, arXiv 2506.07339): `planned()` gives the
  actions already committed, which the policy freezes and guides the rest of the new chunk toward.

A control loop faster than the dataset's period plays each action for several ticks (sample and
hold); a slower one skips. Time may be control steps * dt (closed-loop eval) or seconds from a
ROS clock (policy_node): the same code serves both.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import count

import numpy as np

from vla_policy.types import ActionChunk

JOINS = ("ensemble", "switch", "rtc")
_EPS = 1e-9


@dataclass
class _Queued:
    chunk: ActionChunk
    start: float  # seconds
    id: int  # order of arrival: which chunk an action came from

    @property
    def end(self) -> float:
        return self.start + len(self.chunk) * self.chunk.dt

    def index(self, t: float) -> int:
        return int(np.floor((t - self.start) / self.chunk.dt + _EPS))

    def covers(self, t: float) -> bool:
        return 0 <= self.index(t) < len(self.chunk)

    def action_at(self, t: float) -> np.ndarray:
        return self.chunk.actions[min(max(self.index(t), 0), len(self.chunk) - 1)]


class ActionScheduler:
    def __init__(self, ensemble_decay: float = 0.1, ensemble_gripper: bool = False, join: str = "ensemble"):
        """`ensemble_gripper`: blend the last (gripper) dimension too. The gripper is binary in the
        demonstrations, so by default the newest chunk decides it (a blend hovers half-open)."""
        if join not in JOINS:
            raise ValueError(f"join must be one of {', '.join(JOINS)}, not {join!r}")
        self.ensemble_decay, self.ensemble_gripper, self.join = ensemble_decay, ensemble_gripper, join
        self.queue: deque[_Queued] = deque()
        self._ids = count()
        self.source: int | None = None  # id of the newest chunk behind the last action_at (None: none)
        self.source_index = 0  # ... and the index of its action played

    def reset(self) -> None:
        self.queue.clear()
        self.source = None

    def add(self, chunk: ActionChunk, start: float) -> None:
        """Queue a chunk predicted from the observation taken at time `start` (seconds)."""
        if self.queue and start < self.queue[-1].start:
            raise ValueError(f"chunks must arrive in time order: {start} < {self.queue[-1].start}")
        self.queue.append(_Queued(chunk, float(start), next(self._ids)))

    def horizon(self) -> float:
        """The time up to which queued chunks hold actions (-inf when empty)."""
        return self.queue[-1].end if self.queue else -np.inf

    def _join(self, t: float) -> tuple[np.ndarray, _Queued] | None:
        covering = [q for q in self.queue if q.covers(t)]
        if not covering:
            return None
        newest = covering[-1]
        if self.join != "ensemble" or len(covering) == 1:
            return newest.action_at(t), newest
        preds = np.stack([q.action_at(t) for q in covering])  # (K, A) oldest first
        weights = np.exp(-self.ensemble_decay * np.arange(len(preds)))
        action = (weights[:, None] * preds).sum(0) / weights.sum()
        if not self.ensemble_gripper:
            action[-1] = preds[-1, -1]
        return action, newest

    def action_at(self, t: float) -> np.ndarray | None:
        """(A,) the joined action for time t, or None when no queued chunk covers t."""
        while self.queue and self.queue[0].index(t) >= len(self.queue[0].chunk):
            self.queue.popleft()
        joined = self._join(t)
        if joined is None:
            self.source = None
            return None
        self.source, self.source_index = joined[1].id, joined[1].index(t)
        return joined[0]

    def planned(self, start: float, steps: int, dt: float) -> np.ndarray | None:
        """(steps, A) what action_at will give at start + i*dt if no other chunk arrives: the
        actions a new chunk anchored at `start` must continue; rows no queued chunk covers are NaN
        (None when nothing is queued). Nothing is dropped from the queue."""
        if not self.queue:
            return None
        planned = np.full((steps, len(self.queue[-1].chunk.actions[0])), np.nan)
        for i in range(steps):
            joined = self._join(start + i * dt)
            if joined is not None:
                planned[i] = joined[0]
        return planned


class DelayEstimate:
    """How long a chunk takes from its observation's stamp to being queued (waiting for the frame,
    inference, transport): the steps real-time chunking freezes. The 90th percentile of the last
    `window` chunks, so one warm-up outlier (a first call that allocates or compiles) freezes too
    much for one chunk at most, and a delay that grows is followed within a few chunks."""

    def __init__(self, window: int = 10, quantile: float = 90.0):
        self.samples: deque[float] = deque(maxlen=window)
        self.quantile = quantile

    def add(self, seconds: float) -> None:
        self.samples.append(max(0.0, float(seconds)))

    def seconds(self) -> float:
        return float(np.percentile(self.samples, self.quantile)) if self.samples else 0.0

    def steps(self, dt: float) -> int:
        return int(math.ceil(self.seconds() / dt - 1e-9))


def rtc_weights(frozen: int, overlap: int, horizon: int) -> np.ndarray:
    """(horizon,) real-time chunking's soft mask: 1 on the `frozen` steps that execute while the
    chunk is computed, decaying exponentially over the rest of the `overlap` with the previous
    chunk, 0 after it (Black et al. 2025, eq. 5, with H - s = overlap)."""
    weights = np.zeros(horizon)
    frozen, overlap = min(frozen, horizon), min(max(overlap, frozen), horizon)
    weights[:frozen] = 1.0
    i = np.arange(frozen, overlap)
    c = (overlap - i) / (overlap - frozen + 1)
    weights[frozen:overlap] = c * np.expm1(c) / (math.e - 1)
    return weights
