"""The policy node's latest inputs, paired by stamp into one observation.

No ROS messages here: callbacks convert messages (conversions.py) and hand numpy arrays with
their stamps (seconds) to `InputBuffer`, which the inference thread reads under one lock.
An observation is the newest frame of the reference (first) camera, the other cameras' frames
and the proprioception nearest to its stamp, each within `tolerance` seconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

HISTORY = 32  # stamped samples kept per stream for pairing
RATE_WINDOW = 2.0  # seconds over which input rates are measured


@dataclass
class Stamped:
    stamp: float  # seconds, from the message header
    value: object
    received: float = float("-inf")  # seconds, the node's clock when the message arrived


@dataclass
class Observation:
    stamp: float  # the reference camera's stamp
    obs: dict = field(default_factory=dict)  # the Policy's observation dict (images, proprio keys)


class InputBuffer:
    def __init__(self, streams: list[str], tolerance: float):
        """`streams`: names of every input the observation needs; the first is the reference camera."""
        self.streams, self.tolerance = list(streams), tolerance
        self.history: dict[str, deque[Stamped]] = {s: deque(maxlen=HISTORY) for s in streams}
        self.received_at: dict[str, deque[float]] = {s: deque(maxlen=1000) for s in streams}  # up to 500 Hz
        self.instruction: str | None = None
        self.lock = threading.Lock()
        self.new_frame = threading.Condition(self.lock)

    def put(self, stream: str, stamp: float, value, now: float) -> None:
        with self.lock:
            self.history[stream].append(Stamped(stamp, value, now))
            self.received_at[stream].append(now)
            self.new_frame.notify_all()

    def set_instruction(self, text: str) -> bool:
        """True when the instruction changed."""
        with self.lock:
            changed, self.instruction = text != self.instruction, text
            return changed

    def staleness(self, now: float) -> dict[str, float]:
        """Seconds since each stream's newest stamp (inf when it never arrived)."""
        with self.lock:
            return {s: (now - h[-1].stamp) if h else float("inf") for s, h in self.history.items()}

    def rates(self, now: float, window: float = RATE_WINDOW) -> dict[str, float]:
        """Messages per second received on each stream over the last `window` seconds."""
        with self.lock:
            return {s: sum(1 for t in r if now - t <= window) / window for s, r in self.received_at.items()}

    def latest(self, after: float = float("-inf")) -> Observation | None:
        """The newest complete observation newer than `after`: the newest reference frame for which
        every stream has a sample within tolerance (streams of one stamp arrive one after another)."""
        with self.lock:
            return self._newest_complete(after)

    def wait_for_observation_after(self, stamp: float, timeout: float, received_after: float = float("-inf")) -> Observation | None:
        """Block until a complete observation newer than `stamp` exists whose reference frame
        arrived after `received_after` (the node's clock: a frame taken after the caller woke,
        whatever the sender's clock says); it, or None on timeout."""
        with self.new_frame:
            return self.new_frame.wait_for(lambda: self._newest_complete(stamp, received_after), timeout)

    def _newest_complete(self, after: float, received_after: float = float("-inf")) -> Observation | None:
        for anchor in reversed(self.history[self.streams[0]]):
            if anchor.stamp <= after or anchor.received <= received_after:
                return None
            observation = self._paired(anchor)
            if observation is not None:
                return observation
        return None

    def _paired(self, anchor: Stamped) -> Observation | None:
        observation = Observation(anchor.stamp)
        for stream in self.streams:
            nearest = min(self.history[stream], key=lambda s: abs(s.stamp - anchor.stamp), default=None)
            if nearest is None or abs(nearest.stamp - anchor.stamp) > self.tolerance:
                return None
            observation.obs.update(nearest.value)
        return observation
