"""The policy node's latest inputs, paired by stamp into one observation.

No ROS messages here: callbacks convert messages (conversions.py) and hand numpy arrays with
their stamps (seconds) to `InputBuffer`, which the inference thread reads under one lock.
An observation is the newest frame of the reference (first) camera, the other cameras' frames
and the proprioception nearest to its stamp, each within `tolerance` seconds.

Time is judged on the node's clock: a stream is stale by the time since its last message
*arrived*; header stamps only pair streams and anchor chunks. A stamp from the future (beyond
`max_future`) or already older than `max_age` on arrival is refused, so a robot whose clock
runs ahead or behind holds instead of being trusted, and recovers once its stamps are sane.
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
    received: float = float("-inf")  # when the reference frame arrived (the node's clock)
    obs: dict = field(default_factory=dict)  # the Policy's observation dict (images, proprio keys)


class InputBuffer:
    def __init__(self, streams: list[str], tolerance: float, max_future: float = 0.05, max_age: float = 0.2):
        """`streams`: names of every input the observation needs; the first is the reference camera.
        `max_future` / `max_age`: seconds a stamp may be ahead of / behind the node's clock on arrival."""
        self.streams, self.tolerance = list(streams), tolerance
        self.max_future, self.max_age = max_future, max_age
        self.history: dict[str, deque[Stamped]] = {s: deque(maxlen=HISTORY) for s in streams}
        self.received_at: dict[str, deque[float]] = {s: deque(maxlen=1000) for s in streams}  # up to 500 Hz
        self.instruction: str | None = None
        self.lock = threading.Lock()
        self.new_frame = threading.Condition(self.lock)

    def put(self, stream: str, stamp: float, value, now: float) -> str | None:
        """Keep a sample that arrived at `now`; -> why it was refused (a stamp out of bounds), or None."""
        lag = now - stamp
        if lag < -self.max_future:
            return f"stamp {-lag:.3f} s in the future (clocks not synchronised?)"
        if lag > self.max_age:
            return f"stamp {lag:.3f} s old on arrival"
        with self.lock:
            self.history[stream].append(Stamped(stamp, value, now))
            self.received_at[stream].append(now)
            self.new_frame.notify_all()
        return None

    def set_instruction(self, text: str) -> bool:
        """True when the instruction changed."""
        with self.lock:
            changed, self.instruction = text != self.instruction, text
            return changed

    def staleness(self, now: float) -> dict[str, float]:
        """Seconds since each stream's newest sample arrived (inf when none did)."""
        with self.lock:
            return {s: (now - r[-1]) if r else float("inf") for s, r in self.received_at.items()}

    def rates(self, now: float, window: float = RATE_WINDOW) -> dict[str, float | None]:
        """Messages per second arriving on each stream over the last `window` seconds, from the
        spacing of the arrivals (a stream that began within the window is not under-counted);
        None with fewer than 3 arrivals in the window."""
        with self.lock:
            rates = {}
            for stream, arrivals in self.received_at.items():
                recent = [t for t in arrivals if now - t <= window]
                span = recent[-1] - recent[0] if len(recent) >= 3 else 0.0
                rates[stream] = (len(recent) - 1) / span if span > 0 else None
            return rates

    def latest(self, received_after: float = float("-inf")) -> Observation | None:
        """The newest complete observation whose reference frame arrived after `received_after`:
        the newest reference frame for which every stream has a sample within tolerance."""
        with self.lock:
            return self._newest_complete(received_after)

    def wait_for_observation(self, received_after: float, timeout: float) -> Observation | None:
        """Block until a complete observation exists whose reference frame arrived after
        `received_after` (the node's clock, whatever the sender's says); it, or None on timeout."""
        with self.new_frame:
            return self.new_frame.wait_for(lambda: self._newest_complete(received_after), timeout)

    def _newest_complete(self, received_after: float) -> Observation | None:
        for anchor in reversed(self.history[self.streams[0]]):
            if anchor.received <= received_after:
                return None
            observation = self._paired(anchor)
            if observation is not None:
                return observation
        return None

    def _paired(self, anchor: Stamped) -> Observation | None:
        observation = Observation(anchor.stamp, anchor.received)
        for stream in self.streams:
            nearest = min(self.history[stream], key=lambda s: abs(s.stamp - anchor.stamp), default=None)
            if nearest is None or abs(nearest.stamp - anchor.stamp) > self.tolerance:
                return None
            observation.obs.update(nearest.value)
        return observation
