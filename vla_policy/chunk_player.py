"""ChunkPlayer: `select_action` for any policy that predicts whole chunks (local or remote).

A new chunk every `replan_every` control steps (sooner when the queue runs out), joined with
what is queued by the ActionScheduler's strategy; with real-time chunking the new chunk gets the
actions already committed as its prefix. `delay_steps` makes inference take that long in control
time (an experiment knob for closed-loop evaluation, exact and reproducible): the chunk from the
observation at step n arrives at step n + delay, the robot meanwhile plays what was queued (or
holds), and the next inference starts only when this one has arrived, as on a robot whose policy
computer is busy. It needs `predict_chunk_and_future(obs, instruction, prefix, frozen, future)`,
`check_instruction(text)`, `dt`, `replan_every`, `chunk_length`, `action_space` and `scheduler`
from the class it is mixed into.
"""

from __future__ import annotations

import numpy as np

from vla_policy.types import ActionChunk, InstructionCheck


class ChunkPlayer:
    delay_steps = 0
    refusal: InstructionCheck | None = None  # the instruction the gate refused, while it holds

    def reset_player(self) -> None:
        self.scheduler.reset()
        self.step = 0
        self.in_flight: tuple[int, ActionChunk] | None = None  # (observation step, chunk) not yet arrived
        self.next_inference = 0  # step of the next observation to plan from
        self.sources: list[int] = []  # per step: which chunk the action came from (-1: a hold)
        self._gripper = -1.0  # the last commanded gripper action, kept by a hold (-1: open, as it starts)

    def predict_chunk(
        self, obs: dict, instruction: str | None = None, prefix: np.ndarray | None = None, frozen: int = 0
    ) -> ActionChunk:
        """A whole chunk (H, A) of unnormalised actions for this observation. With a `prefix` (H, A),
        what the robot will play from this observation on if no new chunk came (ActionScheduler.
        planned; NaN where nothing is planned), and `frozen`, how many of those steps execute
        before this chunk can arrive, the chunk continues them (real-time chunking): the frozen
        steps are copied, the rest of the overlap guided toward (a flow head; others only freeze)."""
        return self.predict_chunk_and_future(obs, instruction, prefix, frozen, future=False)[0]

    def _arrive(self) -> None:
        """Queue the chunk in flight once its delay has passed, anchored at its observation."""
        if self.in_flight is not None and self.step >= self.in_flight[0] + self.delay_steps:
            self.scheduler.add(self.in_flight[1], start=self.in_flight[0] * self.dt)
            self.in_flight = None

    def select_action(self, obs: dict) -> np.ndarray:
        """One action for this control step from the queued chunks; a hold while the observation's
        instruction is one the policy's gate refuses (`refusal` says why)."""
        check = self.check_instruction(obs.get("instruction", "") if isinstance(obs, dict) else "")
        self.refusal = None if check.accepted else check
        if not check.accepted:
            return self.hold()
        now = self.step * self.dt
        self._arrive()
        if self.in_flight is None and (self.step >= self.next_inference or self.scheduler.horizon() <= now):
            frozen = self.delay_steps
            planned = self.scheduler.planned(now, self.chunk_length, self.dt) if self.scheduler.join == "rtc" else None
            self.in_flight = (self.step, self.predict_chunk(obs, prefix=planned, frozen=frozen))
            # Due replan_every after its own observation, so planned one delay earlier (and, since
            # inference is serial, not before this one has arrived: in_flight waits for that).
            self.next_inference = self.step + self.replan_every - frozen
            self._arrive()
        action = self.scheduler.action_at(now)
        if action is None:  # nothing planned for now (inference slower than the chunk lasts): hold
            action = np.zeros(self.action_space.size)
            action[-1] = self._gripper
        self._gripper = float(action[-1])
        self.sources.append(-1 if self.scheduler.source is None else self.scheduler.source)
        self.step += 1
        return np.clip(action, -1.0, 1.0)

    def hold(self) -> np.ndarray:
        """No motion, the gripper as last commanded; forgets the queued chunks (whatever they
        planned was for something the robot is no longer asked to do)."""
        self.scheduler.reset()
        self.in_flight, self.next_inference = None, self.step
        action = np.zeros(self.action_space.size)
        action[-1] = self._gripper
        self.sources.append(-1)
        self.step += 1
        return action


def delay_steps(delay_ms: float, dt: float) -> int:
    """Control steps a `delay_ms` inference occupies (rounded up)."""
    if delay_ms < 0:
        raise ValueError(f"delay_ms must be >= 0, got {delay_ms}")
    return int(np.ceil(delay_ms / 1e3 / dt - 1e-9))
