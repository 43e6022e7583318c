"""Real ROS 2 for tests: nodes started as the launch files start them, on a private DDS domain,
and a test-side rclpy node that publishes robot inputs and records what comes back."""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory
from vla_ros import conversions as conv
from vla_ros.closed_loop import CONFIG_DIR, node_command, ros_processes
from vla_ros.policy_params import PARAMETERS as POLICY_PARAMETERS
from vla_ros.qos import RELIABLE, SENSOR

ARM = POLICY_PARAMETERS["arm_joint_names"]
GRIPPER = POLICY_PARAMETERS["gripper_joint_names"]


class RepeatingPublisher:
    """An instruction source as sim_node is one: it repeats its last message at 2 Hz while the
    robot spins (policy_node's volatile subscription gets no replay of earlier messages)."""

    def __init__(self, publisher):
        self.publisher, self.last, self.sent_at = publisher, None, -np.inf

    def publish(self, msg) -> None:
        self.publisher.publish(msg)
        self.last, self.sent_at = msg, time.monotonic()

    def repeat(self) -> None:
        if self.last is not None and time.monotonic() - self.sent_at >= 0.5:
            self.publish(self.last)


class Robot(Node):
    """Plays a robot's drivers towards policy_node and records its outputs."""

    def __init__(self, image_size: int = 32):
        super().__init__("test_robot")
        self.size = image_size
        self.images = {c: self.create_publisher(Image, f"camera/{c}/image_raw", SENSOR) for c in ("agentview", "wrist")}
        self.joints = self.create_publisher(JointState, "joint_states", SENSOR)
        self.pose = self.create_publisher(PoseStamped, "eef_pose", SENSOR)
        self.instruction = RepeatingPublisher(self.create_publisher(String, "vla/instruction", RELIABLE))
        self.actions: list[tuple[float, np.ndarray]] = []
        self.chunks: list[float] = []  # monotonic arrival time of each vla/action_chunk
        self.next_publish = 0.0  # monotonic time of the next input set
        self.joint_scale = 1.0  # a huge one: finite in a message, beyond float32 in the model
        self.stamp_offset = 0.0  # seconds added to every input stamp: a robot clock ahead (> 0) or behind
        self.diagnostics: list[dict] = []
        self.create_subscription(Float64MultiArray, "vla/action", self._on_action, RELIABLE)
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, RELIABLE)
        self.create_subscription(
            JointTrajectory, "vla/action_chunk", lambda m: self.chunks.append(time.monotonic()), RELIABLE
        )
        self.enable = self.create_client(SetBool, "vla/enable")
        self.change_state = self.create_client(ChangeState, "policy_node/change_state")
        self.get_state = self.create_client(GetState, "policy_node/get_state")

    def _on_action(self, msg) -> None:
        self.actions.append((time.monotonic(), np.asarray(msg.data)))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            self.diagnostics.append(
                {
                    "message": status.message,
                    "level": int.from_bytes(status.level, "little")
                    if isinstance(status.level, bytes)
                    else int(status.level),
                    **{kv.key: kv.value for kv in status.values},
                }
            )

    def publish_inputs(self, cameras=("agentview", "wrist"), joints: bool = True, pose: bool = True) -> None:
        stamp = conv.seconds_to_stamp(self.get_clock().now().nanoseconds * 1e-9 + self.stamp_offset)
        rng = np.random.default_rng(len(self.actions))
        shape = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)  # (H, W)
        for camera in cameras:
            self.images[camera].publish(conv.numpy_to_image(rng.integers(0, 255, shape + (3,), np.uint8), stamp))
        if joints:  # any order: matched by name
            positions = np.r_[[0.02, -0.02], np.linspace(0, 1, 7)[::-1]] * self.joint_scale
            self.joints.publish(conv.numpy_to_joint_state(GRIPPER + ARM[::-1], positions, None, stamp))
        if pose:
            self.pose.publish(conv.numpy_to_pose([0.5, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], stamp, "world"))

    def spin_for(self, seconds: float, publish_hz: float = 0.0, **publish) -> None:
        """Spin; with publish_hz, publish a full set of inputs at that rate (kept across calls)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if publish_hz and time.monotonic() >= self.next_publish:
                self.publish_inputs(**publish)
                self.next_publish = max(self.next_publish + 1.0 / publish_hz, time.monotonic() - 1.0 / publish_hz)
            self.instruction.repeat()
            rclpy.spin_once(self, timeout_sec=0.005)

    def spin_until(self, condition, timeout: float, what: str, publish_hz: float = 0.0, **publish) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
            self.spin_for(0.05, publish_hz, **publish)

    def call(self, client, request, timeout: float = 30.0):
        self.spin_until(client.service_is_ready, timeout, f"service {client.srv_name}")
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"a reply from {client.srv_name}")
        return future.result()

    def actions_since(self, t: float) -> list[np.ndarray]:
        return [a for at, a in self.actions if at >= t]

    def last_diagnostics(self) -> dict:
        return self.diagnostics[-1] if self.diagnostics else {}


def is_hold(action: np.ndarray) -> bool:
    return bool(np.all(action[:-1] == 0.0))


@contextmanager
def policy_node(checkpoint: Path, log_dir: Path, **overrides):
    """policy_node with config/policy.yaml (as sim_demo.launch.py runs it) and a Robot beside it."""
    domain = random.randrange(1, 200)
    params = {"checkpoint": str(checkpoint), "device": "cpu", **overrides}
    commands = {"policy_node": node_command("policy_node", CONFIG_DIR / "policy.yaml", params)}
    with ros_processes(commands, domain, log_dir) as procs:
        rclpy.init(domain_id=domain)
        robot = Robot()
        try:
            yield robot, procs["policy_node"]
        finally:
            robot.destroy_node()
            rclpy.try_shutdown()
