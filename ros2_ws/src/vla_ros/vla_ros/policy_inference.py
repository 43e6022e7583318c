"""policy_node's inference thread: waits for a fresh stamp-paired observation, predicts a chunk
(local model or remote server), queues it on the node's scheduler (void if a hold or a new goal
came meanwhile), scores the world model's pending prediction off the latency path, and rests
until the next chunk is due. With join rtc it hands the model what is committed and how many
steps of it the measured delay freezes; with a remote policy it redials a lost server with
backoff; `extra_delay_ms` adds latency for experiments."""

from __future__ import annotations

import time
import traceback

import numpy as np
from std_msgs.msg import Float32

from vla_ros import conversions as conv


class InferenceLoop:
    """Mixed into PolicyNode: uses its cfg, policy, inputs, scheduler, lock, plan epoch, publishers
    and the delay estimate."""

    def _inference_loop(self) -> None:
        pending = None  # (due time, predicted future latent, plan epoch)
        backoff = 0.1  # seconds before redialling a remote policy server, doubled per failure up to 2 s
        while self._running:
            if not getattr(self.policy, "connected", True):
                backoff = self._redial(backoff)
                pending = None
                continue
            woke = self._now()
            # A frame that arrives after waking, not the newest one held: that one may be a camera
            # period old already, and its age would add to the camera-to-action latency. Judged by
            # arrival on this node's clock, never by the sender's stamp.
            observation = self.inputs.wait_for_observation(received_after=woke, timeout=0.1)
            if observation is None or not self._running:
                continue
            instruction = self.inputs.instruction
            if not instruction or not self.enabled:
                continue
            try:
                pending = self._infer(observation, instruction, pending)
                self.model_error = None
            except Exception as error:  # the node holds and reports; it does not die with the model
                if not self.context.ok():
                    return  # shutting down: publishers are gone
                self.model_error = f"{type(error).__name__}: {error}"
                self.get_logger().error(f"inference failed: {traceback.format_exc(limit=3)}", throttle_duration_sec=5.0)
            # The next chunk is due replan_period after this one's stamp and must be queued by then:
            # wake one lead earlier, the lead being the worst recent time from waking (waiting for a
            # fresh observation included) to a queued chunk, plus one control tick of margin.
            self.wake_to_chunk_s.append(self._now() - woke)
            lead = max(self.wake_to_chunk_s) + 1.0 / self.cfg.control_rate_hz
            rest = min(observation.received + self.replan_period_s - lead - self._now(), self.replan_period_s)
            if rest <= 0 or self._wake.wait(rest):  # a hold or deactivate ends the rest early
                self._wake.clear()

    def _redial(self, backoff: float) -> float:
        """One attempt to reconnect to the policy server; -> the next backoff."""
        try:
            self.policy.reconnect()
        except ConnectionError as error:
            self.get_logger().warning(f"{error}; retrying in {backoff:.1f} s", throttle_duration_sec=5.0)
            deadline = time.monotonic() + backoff
            while self._running and time.monotonic() < deadline:
                time.sleep(0.02)
            return min(2 * backoff, 2.0)
        self.get_logger().info(f"reconnected to {self.cfg.policy_url}")
        return 0.1

    def _extra_delay_s(self) -> float:
        """Experiments only: the added inference latency of this call (extra_delay_ms, + jitter)."""
        jitter = self.cfg.extra_delay_jitter_ms
        return (self.cfg.extra_delay_ms + (self.delay_rng.uniform(0, jitter) if jitter > 0 else 0.0)) / 1e3

    def _infer(self, observation, instruction: str, pending):
        """Queue and publish a chunk from `observation`; then, off the latency path, the surprise of
        the world model's `pending` prediction (due time, latent) once it has come due."""
        policy, started, epoch = self.policy, time.perf_counter(), self.plan_epoch
        prefix, frozen = None, 0
        if self.cfg.join == "rtc":  # what will play from this frame's stamp on, and how much of it surely will
            with self.lock:
                prefix = self.scheduler.planned(observation.stamp, policy.chunk_length, policy.dt)
            frozen = self.delay_estimate.steps(policy.dt)
        chunk, future = policy.predict_chunk_and_future(observation.obs, instruction, prefix, frozen)
        extra = self._extra_delay_s()
        if extra > 0:
            time.sleep(extra)
        self.inference_s.append(time.perf_counter() - started)
        if not np.all(np.isfinite(chunk.actions)):
            raise FloatingPointError("the model predicted NaN/inf actions")
        with self.lock:
            # A chunk from a frame taken before the last hold, or planned across a new goal, is void.
            queued = epoch == self.plan_epoch and observation.received > self.held_at and self.enabled
            if queued:
                if self.scheduler.queue and observation.stamp < self.scheduler.queue[-1].start:
                    self.scheduler.reset()  # the clock went back (a restarted robot or bag): start over
                self.scheduler.add(chunk, start=observation.stamp)
                self.delay_estimate.add(self._now() - observation.stamp)
            if pending is not None and pending[2] != self.plan_epoch:
                pending = None  # its chunk was not played through: there is nothing to score
        if not queued:
            return pending
        self.chunk_pub.publish(conv.chunk_to_trajectory(chunk, conv.seconds_to_stamp(observation.stamp)))
        if pending is not None and observation.stamp >= pending[0]:
            surprise = policy.surprise(pending[1], observation.obs)
            with self.lock:
                if pending[2] == self.plan_epoch:
                    self.surprise = surprise
                    self.surprise_pub.publish(Float32(data=surprise))
            pending = None
        if future is not None and pending is None:
            pending = (observation.stamp + len(chunk) * chunk.dt, future, epoch)
        return pending
