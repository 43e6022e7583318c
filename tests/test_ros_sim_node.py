"""sim_node as a robot stands in for one: it moves on commands and holds when they stop."""

import random
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from vla_ros.closed_loop import CONFIG_DIR, node_command, ros_processes
from vla_ros.qos import RELIABLE, SENSOR

MOVE_X_CLOSED = [0.5, 0, 0, 0, 0, 0, 1.0]  # +x at half the action range, gripper closing


class Driver(Node):
    def __init__(self):
        super().__init__("driver")
        self.pub = self.create_publisher(Float64MultiArray, "vla/action", RELIABLE)
        self.poses: list[tuple[float, np.ndarray]] = []
        self.fingers: list[tuple[float, np.ndarray]] = []
        self.create_subscription(
            PoseStamped, "eef_pose", lambda m: self.poses.append((time.monotonic(), _xyz(m))), SENSOR
        )
        self.create_subscription(
            JointState,
            "joint_states",
            lambda m: self.fingers.append((time.monotonic(), np.array(m.position[-2:]))),
            SENSOR,
        )

    def spin_for(self, seconds: float, command: list[float] | None = None) -> None:
        end, next_send = time.monotonic() + seconds, time.monotonic()
        while time.monotonic() < end:
            if command is not None and time.monotonic() >= next_send:
                self.pub.publish(Float64MultiArray(data=command))
                next_send += 0.05
            rclpy.spin_once(self, timeout_sec=0.005)

    def between(self, series, start: float, end: float) -> np.ndarray:
        return np.array([v for t, v in series if start <= t < end])


def _xyz(msg: PoseStamped) -> np.ndarray:
    return np.array([msg.pose.position.x, msg.pose.position.y, msg.pose.position.z])


def test_without_commands_the_simulated_robot_holds_where_it_is(tmp_path):
    params = {
        "task": "lift",
        "horizon": 400,
        "image_size": 32,
        "command_interface": "action",
        "action_timeout_ms": 200.0,
    }
    domain = random.randrange(1, 200)
    with ros_processes({"sim_node": node_command("sim_node", CONFIG_DIR / "sim.yaml", params)}, domain, tmp_path):
        rclpy.init(domain_id=domain)
        driver = Driver()
        try:
            deadline = time.monotonic() + 120
            while not (driver.poses and driver.count_subscribers("/vla/action")):
                assert time.monotonic() < deadline, "sim_node did not start"
                driver.spin_for(0.1)
            start = time.monotonic()
            driver.spin_for(1.5, MOVE_X_CLOSED)
            stop = time.monotonic()
            driver.spin_for(1.5)  # nothing sent: after action_timeout_ms the node holds
            end = time.monotonic()
        finally:
            driver.destroy_node()
            rclpy.try_shutdown()
    moving = driver.between(driver.poses, start + 0.5, stop)
    assert moving[-1, 0] - moving[0, 0] > 0.02  # it follows the command: > 2 cm in 1 s
    held = driver.between(driver.poses, stop + 0.5, end)  # past the timeout and the arm's settling
    assert np.ptp(held, axis=0).max() < 0.003, np.ptp(held, axis=0)
    # The hold keeps the gripper as last commanded (closed), not open: a held object stays held.
    closing, kept = driver.between(driver.fingers, stop - 0.2, stop), driver.between(driver.fingers, end - 0.3, end)
    assert np.abs(kept.mean(0)).max() <= np.abs(closing.mean(0)).max() + 1e-3
