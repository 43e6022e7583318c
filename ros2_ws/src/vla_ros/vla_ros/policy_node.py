"""policy_node: a lifecycle node that runs a vla_stack checkpoint at the control rate.

configure loads the checkpoint and warms the model up; activate starts the control loop and the
inference thread; deactivate stops them; cleanup releases the model. The control loop is a
thread of its own at `control_rate_hz` (steady clock, SCHED_FIFO where permitted) and never
waits for the model: each tick plays the current chunks through the ActionScheduler (temporal
ensembling on ROS time) or, when it must, a hold action, and says why in the diagnostics.
Inference runs in another thread on the newest stamp-paired observation; the executor serves
subscriptions, services and the 1 Hz diagnostics.

Safety: inputs are judged on the node's clock (inputs.py); oversized frames, over-long or
non-text instructions and stamps from the future are refused and counted. Every hold (disabled,
model failure, stale or refused input, too slow a robot, surprise) drops the planned chunks and
the world model's pending prediction, so nothing planned before an outage is played after it.
Deactivate and shutdown end with a hold; a tick that fails publishes one.

Where the model runs: in this process, or (`policy_url`) on a `vla serve` server, through
RemotePolicy, with no torch here. A dropped server holds the robot within a tick ("policy server
unreachable") and is redialled with backoff; the loop resumes when it answers. Chunks join by
`join` (ensemble, switch, or rtc: real-time chunking freezes the steps that execute while the
chunk is computed, from a robust estimate of that delay, and inpaints the rest to continue them).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from types import SimpleNamespace

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from vla_policy.proprio import proprio_sources
from vla_policy.scheduler import JOINS, ActionScheduler, DelayEstimate
from vla_ros import conversions as conv
from vla_ros.inputs import InputBuffer
from vla_ros.outputs import CommandOutputs
from vla_ros.policy_inference import InferenceLoop
from vla_ros.policy_inputs import InputCallbacks
from vla_ros.policy_params import PARAMETERS
from vla_ros.policy_status import input_rate_problem, policy_status
from vla_ros.qos import CAMERA, RELIABLE, SENSOR
from vla_ros.rate_loop import make_realtime, run_at_rate
from vla_ros.safety import ActionLimiter, per_dimension

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE


class PolicyNode(InputCallbacks, InferenceLoop, LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("policy_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        self.policy = None  # a vla_policy Policy, or a RemotePolicy when policy_url is set
        self.enabled = True
        self.model_error: str | None = None
        self.surprise: float | None = None
        self.rejected: dict[str, int] = {}
        self._last_reject_log: dict[str, float] = {}  # kind -> monotonic time of its last warning
        self.instruction_error: str | None = None  # why the last instruction was refused
        self.not_understood: str | None = None  # the last instruction the gate refused
        self.rate_problem: str | None = None  # inputs slower than the checkpoint's rate (1 Hz check)
        self.plan_epoch = 0  # bumped by every hold and every new goal: older plans are void
        self.held_at = float("-inf")  # node clock of the last hold: chunks from older frames are void
        self.hold_reason: str | None = "inactive"
        self.tick_times: deque[float] = deque(maxlen=5000)  # monotonic seconds of each control tick
        self.inference_s: deque[float] = deque(maxlen=2000)
        self.wake_to_chunk_s: deque[float] = deque(maxlen=20)  # inference thread: wake -> chunk queued
        self.stamp_to_action_s: deque[float] = deque(maxlen=2000)  # camera stamp -> first action using it
        self._played_start: float | None = None
        self._threads: list[threading.Thread] = []  # the control loop and the inference loop
        self._running = False
        self._wake = threading.Event()  # wakes the inference thread's rest: deactivate, or a hold voided the plan

    def param(self, name: str):
        value = self.get_parameter(name).value
        return (
            [v for v in value if v != ""] if isinstance(value, list) and value and isinstance(value[0], str) else value
        )

    # -------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cfg = SimpleNamespace(**{name: self.param(name) for name in PARAMETERS})  # read once per configure
        try:  # the parameters first, then the checkpoint: a typo fails before the model loads
            if self.cfg.input_rate_check not in ("warn", "hold", "off"):
                raise ValueError(f"input_rate_check must be warn, hold or off, not {self.cfg.input_rate_check!r}")
            if self.cfg.image_transport not in ("raw", "compressed"):
                raise ValueError(f"image_transport must be raw or compressed, not {self.cfg.image_transport!r}")
            if self.cfg.join not in JOINS:
                raise ValueError(f"join must be one of {', '.join(JOINS)}, not {self.cfg.join!r}")
            self._load_policy()
            size = self.policy.action_space.size
            self.limiter = ActionLimiter(
                per_dimension(self.cfg.action_low, size, "action_low"),
                per_dimension(self.cfg.action_high, size, "action_high"),
                self.cfg.max_action_rate,
            )
            self.outputs = CommandOutputs(self, self.cfg.output, self.policy.action_space, self.cfg.arm_joint_names)
        except Exception as error:  # a bad parameter, checkpoint or device: stay unconfigured, say why
            self.get_logger().error(f"configure failed: {error}")
            self.policy = None
            return FAILURE
        self.scheduler = ActionScheduler(self.cfg.ensemble_decay, join=self.cfg.join)
        self.delay_estimate = DelayEstimate()
        self.delay_rng = np.random.default_rng(0)  # extra_delay_jitter_ms draws
        self.played: deque[tuple[np.ndarray, int]] = deque(maxlen=1000)  # (action sent, its chunk id; -1 hold)
        self.inputs = InputBuffer(
            self.streams,
            self.cfg.pair_tolerance_ms / 1e3,
            max_future=self.cfg.max_future_stamp_ms / 1e3,
            max_age=self.cfg.max_staleness_ms / 1e3,
        )
        self.lock = threading.Lock()  # scheduler, limiter and status between the threads
        self._create_interfaces()
        return SUCCESS

    def _load_policy(self) -> None:
        checkpoint, url = self.cfg.checkpoint, self.cfg.policy_url
        if url:
            from vla_policy.remote.client import RemotePolicy

            self.policy = RemotePolicy(
                url, self.cfg.policy_token, self.cfg.policy_timeout_ms / 1e3, self.cfg.image_codec
            )
            checkpoint = f"{self.policy.metadata['checkpoint']} at {url}"
        else:
            import torch  # only where the model runs here

            from vla_policy.policy import Policy
            from vla_policy.train.checkpoint import read_checkpoint_meta

            if not checkpoint:
                raise ValueError(
                    "parameter 'checkpoint' is empty; pass checkpoint:=<dir with model.safetensors> "
                    "(or policy_url:=ws://host:port of a vla serve)"
                )
            torch.set_num_threads(self.cfg.inference_threads)
            flow_steps = self.cfg.flow_steps or None
            if flow_steps and read_checkpoint_meta(checkpoint)[0].model.head != "flow":
                self.get_logger().warning(f"flow_steps={flow_steps} ignored: this checkpoint has no flow head")
                flow_steps = None
            self.policy = Policy.from_checkpoint(checkpoint, device=self.cfg.device, flow_steps=flow_steps)
        model = self.policy.config.model
        period_ms = self.cfg.replan_period_ms
        self.replan_period_s = period_ms / 1e3 if period_ms >= 0 else self.policy.replan_every * self.policy.dt
        self.cameras = self.cfg.cameras or list(model.vision.cameras)
        unknown = set(self.cameras) - set(model.vision.cameras)
        if unknown:
            raise ValueError(
                f"cameras {sorted(unknown)} are not inputs of this checkpoint ({list(model.vision.cameras)})"
            )
        sources = proprio_sources(model.proprio_keys, composed=True)  # from the messages below
        supported = {"joint_pos", "gripper_qpos", "eef_pos", "eef_quat"}
        if sources - supported:
            raise ValueError(
                f"checkpoint needs proprio {sorted(sources - supported)}; the node provides {sorted(supported)}"
            )
        self.needs_pose = bool({"eef_pos", "eef_quat"} & sources)
        self.streams = (
            [f"camera/{c}" for c in self.cameras] + ["joint_states"] + (["eef_pose"] if self.needs_pose else [])
        )
        warm = {f"{c}_image": np.zeros((model.vision.image_size,) * 2 + (3,), np.uint8) for c in self.cameras}
        warm.update(
            joint_pos=np.zeros(len(self.cfg.arm_joint_names)),
            gripper_qpos=np.zeros(len(self.cfg.gripper_joint_names)),
            eef_pos=np.zeros(3),
            eef_quat=np.array([1.0, 0, 0, 0]),
        )
        for _ in range(self.cfg.warmup_iterations):  # the same call the inference thread makes
            self.policy.predict_chunk_and_future(warm, "warm up")
        if self.cfg.join == "rtc" and model.head != "flow":
            self.get_logger().warning(
                "join rtc: this checkpoint's head is not a flow head; the prefix is frozen, not inpainted"
            )
        self.get_logger().info(f"loaded {checkpoint} on {self.policy.device}; inputs {self.streams}")

    def _create_interfaces(self) -> None:
        compressed = self.cfg.image_transport == "compressed"
        self.image_type, suffix = (CompressedImage, "/compressed") if compressed else (Image, "")
        # Frames arrive serialized: an oversized one is refused on its byte count, before rclpy
        # would build a Python message of it (a 4k rgb8 frame is 25 MB).
        self.max_image_message_bytes = (
            self.cfg.max_compressed_bytes
            if compressed
            else 3 * self.cfg.max_image_pixels + 4 * self.cfg.max_image_pixels**0.5
        ) + 4096  # rows may be padded; header
        self.subscriptions_ = [
            self.create_subscription(
                self.image_type, f"camera/{c}/image_raw{suffix}", lambda m, c=c: self._on_image(c, m), CAMERA, raw=True
            )
            for c in self.cameras
        ]
        self.subscriptions_.append(self.create_subscription(JointState, "joint_states", self._on_joints, SENSOR))
        if self.needs_pose:
            self.subscriptions_.append(self.create_subscription(PoseStamped, "eef_pose", self._on_pose, SENSOR))
        # Volatile: it matches every publisher, volatile (`ros2 topic pub`) or latched, without a QoS
        # warning on either side. A latched publisher's earlier message is not replayed to it, so
        # instruction sources repeat theirs (sim_node does, at 1 Hz); repeats are ignored.
        self.subscriptions_.append(self.create_subscription(String, "vla/instruction", self._on_instruction, RELIABLE))
        self.chunk_pub = self.create_lifecycle_publisher(JointTrajectory, "vla/action_chunk", RELIABLE)
        self.surprise_pub = self.create_lifecycle_publisher(Float32, "vla/world_model/surprise", RELIABLE)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "diagnostics", RELIABLE)
        self.enable_srv = self.create_service(SetBool, "vla/enable", self._on_enable)
        self.diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self.lock:
            self.scheduler.reset()
            self.limiter.reset()
        result = super().on_activate(state)  # the lifecycle publishers first: the first tick publishes
        if result != SUCCESS:
            return result
        self._running = True
        self._wake.clear()
        self._threads = [
            threading.Thread(target=self._control_loop, name="vla_control", daemon=True),
            threading.Thread(target=self._inference_loop, name="vla_inference", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_control()
        self._final_hold()
        self.hold_reason = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        was_running = self._running
        self._stop_control()
        if was_running:
            self._final_hold()
        self._release()
        return SUCCESS

    def _stop_control(self) -> None:
        """Stop both threads: the control loop within a tick, inference after its current call."""
        self._running = False
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
            if thread.is_alive():
                self.get_logger().error(f"thread {thread.name} did not stop within 2 s")
        self._threads = []

    def _final_hold(self) -> None:
        """The last command before the loop goes quiet: no motion (the gripper keeps its state)."""
        if getattr(self, "outputs", None) is None or not self.context.ok():
            return
        with self.lock:
            action = self.limiter.hold()
        self._publish(action, self._now(), holding=True)

    def _release(self) -> None:
        for sub in getattr(self, "subscriptions_", []):
            self.destroy_subscription(sub)
        self.subscriptions_ = []
        if getattr(self, "outputs", None) is not None:
            self.outputs.destroy()
            self.outputs = None
        for name in ("chunk_pub", "surprise_pub"):
            if getattr(self, name, None) is not None:
                self.destroy_lifecycle_publisher(getattr(self, name))
                setattr(self, name, None)
        for name, destroy in (
            ("diagnostics_pub", self.destroy_publisher),
            ("enable_srv", self.destroy_service),
            ("diagnostics_timer", self.destroy_timer),
        ):
            if getattr(self, name, None) is not None:
                destroy(getattr(self, name))
                setattr(self, name, None)
        self.policy = None

    # ----------------------------------------------------------------- inputs
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _void_plan(self) -> None:
        """Drop queued chunks and the pending world-model prediction: they were planned for a
        goal or a moment that no longer holds."""
        with self.lock:
            self.scheduler.reset()
            self.plan_epoch += 1
            self.surprise = None
        self._wake.set()

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        self.enabled = bool(request.data)
        self._void_plan()
        response.success, response.message = True, "enabled" if request.data else "disabled: holding"
        self.get_logger().warning(f"vla/enable -> {request.data}")
        return response

    # ---------------------------------------------------------------- control
    def _why_hold(self, now: float) -> str | None:
        if not self.enabled:
            return "disabled by vla/enable"
        if not getattr(self.policy, "connected", True):  # a remote policy whose server went away
            return f"policy server unreachable: {self.policy.last_error or 'connection closed'}"
        if self.model_error:
            return f"model failed: {self.model_error}"
        if self.instruction_error:
            return self.instruction_error
        if not self.inputs.instruction:
            return "no instruction on vla/instruction"
        stale = {s: age for s, age in self.inputs.staleness(now).items() if age * 1e3 > self.cfg.max_staleness_ms}
        if stale:
            return "stale inputs: " + ", ".join(
                f"{s} {'never received' if age == float('inf') else f'{age * 1e3:.0f} ms'}" for s, age in stale.items()
            )
        if self.rate_problem and self.cfg.input_rate_check == "hold":
            return self.rate_problem
        threshold = self.cfg.surprise_threshold
        if threshold > 0 and self.surprise is not None and self.surprise > threshold:
            return f"world-model surprise {self.surprise:.3f} > {threshold}"
        return None

    def _control_loop(self) -> None:
        """The control thread: `_tick` at `control_rate_hz`, SCHED_FIFO where permitted."""
        refused = make_realtime(self.cfg.control_thread_priority)
        if refused:
            self.get_logger().warning(
                f"control thread: SCHED_FIFO priority {self.cfg.control_thread_priority} "
                f"refused ({refused}); running at normal priority, with more jitter"
            )
        run_at_rate(1.0 / self.cfg.control_rate_hz, self._guarded_tick, lambda: self._running and self.context.ok())

    def _guarded_tick(self) -> None:
        try:
            self._tick()
        except Exception:  # a thread has no executor to surface it: log, hold, and tick again next period
            if not self.context.ok():
                return
            self.get_logger().error(f"control tick failed: {traceback.format_exc(limit=3)}", throttle_duration_sec=5.0)
            self.hold_reason = "control tick failed (see the log)"
            try:
                with self.lock:
                    action = self.limiter.hold()
                self._publish(action, self._now(), holding=True)
            except Exception:
                self.get_logger().error(
                    f"hold after a failed tick failed: {traceback.format_exc(limit=3)}", throttle_duration_sec=5.0
                )

    def _tick(self) -> None:
        now = self._now()
        self.tick_times.append(time.monotonic())
        with self.lock:
            reason = self._why_hold(now)
            if reason:  # a real hold: what was planned before it must not play after it
                self.scheduler.reset()
                self.plan_epoch += 1
                self.surprise = None
                self.held_at = now
                self._wake.set()  # replan from the first fresh frame once the hold ends
            action = None if reason else self.scheduler.action_at(now)
            if reason is None and action is None:
                reason = "waiting for the first chunk"
            newest = self.scheduler.queue[-1] if self.scheduler.queue else None
            if action is None:
                action = self.limiter.hold()
                self.played.append((action, -1, 0))
            else:
                action = self.limiter.limit(action, 1.0 / self.cfg.control_rate_hz)
                self.played.append((action, self.scheduler.source, self.scheduler.source_index))
                if newest.start != self._played_start:
                    self._played_start = newest.start
                    self.stamp_to_action_s.append(now - newest.start)
            self.hold_reason = reason
        if not np.all(np.isfinite(action)):
            raise FloatingPointError(f"non-finite action {action.tolist()}")  # _guarded_tick holds instead
        self._publish(action, now, holding=reason is not None, newest=newest)

    def _publish(self, action, now: float, holding: bool, newest=None) -> None:
        chunk = None if holding or newest is None else newest.chunk
        self.outputs.publish(action, now, chunk, None if newest is None else newest.start)

    # ------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = self._now()
        rates = self.inputs.rates(now)
        self.rate_problem = (
            None
            if self.cfg.input_rate_check == "off" or self.policy is None
            else input_rate_problem(rates, self.policy.dt, self.cfg.min_input_rate_fraction)
        )
        msg = DiagnosticArray(status=[policy_status(self, now, rates)])
        msg.header.stamp = conv.seconds_to_stamp(now)
        self.diagnostics_pub.publish(msg)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = PolicyNode()
    executor = SingleThreadedExecutor()  # measured: held 50 Hz at ~1 ms where the multi-threaded one did not
    executor.add_node(node)
    if node.param("autostart") and (node.trigger_configure() != SUCCESS or node.trigger_activate() != SUCCESS):
        node.destroy_node()
        rclpy.try_shutdown()
        raise SystemExit("policy_node: autostart failed (see the error above)")
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node._stop_control()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
