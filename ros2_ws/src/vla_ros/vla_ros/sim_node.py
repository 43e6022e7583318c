"""sim_node: a vla_stack simulation task standing in for a robot, in real time.

Any registered task: the robosuite Panda tasks, or a Meta-World task (a Sawyer stepping at
Meta-World's 80 Hz whatever `control_freq` says; 4-d actions; its gripper on joint_states as one
`gripper_opening` joint).

Every control period (`control_freq`, divided by `time_factor`) it applies the newest command (a
hold when none arrived within `action_timeout_ms` of ROS time), steps the simulator and
publishes what a robot would: camera images, joint states and the end-effector pose, all with
the same stamp. `command_interface` chooses what it takes: `action` (the normalised action on
`vla/action`) or `twist` (geometry_msgs/TwistStamped on `vla/cmd_twist` in m/s and rad/s, base
frame, turned into the OSC offset that moves the arm at that speed at any step rate, with the
gripper position on `vla/gripper_command`), the interface a real robot's Cartesian velocity
controller takes. It also publishes the episode's
instruction (latched, and repeated at 1 Hz for late volatile subscribers), a success flag each step, the episode index at each start and the outcome at each end. `sim/reset`
(std_srvs/Trigger) starts the next seeded episode; with `auto_reset` it starts by itself;
with `start_paused` nothing moves until the first reset (so a slow-starting policy loses no steps).
"""

from __future__ import annotations

import os

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String, UInt32
from std_srvs.srv import Trigger

from vla_policy.action_space import ActionSpace, panda_osc
from vla_ros import conversions as conv
from vla_ros.qos import LATCHED, RELIABLE, SENSOR

PARAMETERS = {
    "task": "tabletop",
    "cameras": ["agentview", "wrist"],
    "image_size": 128,
    "instructions": "train",  # train | heldout | all
    "seed": 1_000_000,  # episode k uses seed + k
    "horizon": 0,  # 0: the task's own
    "time_factor": 1.0,  # 2.0 runs twice as fast as real time
    "control_freq": 20,  # the robot's step rate (Hz); the tasks' demonstrations are 20 Hz
    "command_interface": "action",  # action: vla/action (normalised) | twist: vla/cmd_twist + vla/gripper_command
    "action_timeout_ms": 200.0,
    "publish_instruction": True,  # False when an operator publishes instructions
    "auto_reset": False,
    "start_paused": False,  # publish sensors but do not step until the first sim/reset
    "frame_id": "world",
}


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        os.environ.setdefault("MUJOCO_GL", "egl")
        from sim.env import NATIVE_RATE_HZ, EnvConfig, make_env  # after MUJOCO_GL is set

        if p["command_interface"] not in ("action", "twist"):
            raise ValueError(f"command_interface must be action or twist, not {p['command_interface']!r}")
        self.env = make_env(
            EnvConfig(
                task=p["task"],
                cameras=tuple(p["cameras"]),
                image_size=p["image_size"],
                instructions=p["instructions"],
                horizon=p["horizon"] or None,
                control_freq=p["control_freq"],
            )
        )
        spec = getattr(self.env, "action_spec", None)  # an env that states its own (Meta-World)
        self.space = ActionSpace.from_dict(spec) if spec else panda_osc(1.0 / self.env.config.control_freq)
        self.step_dt = self.space.dt  # simulated seconds per step
        self.period = self.step_dt / p["time_factor"]
        # robosuite's OSC_POSE drives the arm with a force proportional to each step's offset, so
        # the arm's speed follows the offset, not the offset per second: a twist becomes the offset
        # that gives its speed at the rate the controller's speeds were taken at, whatever this
        # robot's step rate (docs/RESULTS.md, "A robot at another step rate"). Meta-World's mocap
        # moves the hand by the offset itself: the speed is offset / step.
        self.velocity_dt = self.step_dt if spec else 1.0 / NATIVE_RATE_HZ
        self.arm_names = list(self.env.arm_joint_names)
        self.gripper_names = list(self.env.gripper_joint_names)
        self.image_pubs = {c: self.create_publisher(Image, f"camera/{c}/image_raw", SENSOR) for c in p["cameras"]}
        self.joint_pub = self.create_publisher(JointState, "joint_states", SENSOR)
        self.pose_pub = self.create_publisher(PoseStamped, "eef_pose", SENSOR)
        self.instruction_pub = self.create_publisher(String, "vla/instruction", LATCHED)
        self.success_pub = self.create_publisher(Bool, "vla/success", RELIABLE)
        self.episode_pub = self.create_publisher(UInt32, "sim/episode", LATCHED)
        self.end_pub = self.create_publisher(Bool, "sim/episode_end", LATCHED)
        if p["command_interface"] == "twist":
            self.create_subscription(TwistStamped, "vla/cmd_twist", self._on_twist, RELIABLE)
            self.create_subscription(Float64MultiArray, "vla/gripper_command", self._on_gripper, RELIABLE)
        else:
            self.create_subscription(Float64MultiArray, "vla/action", self._on_action, RELIABLE)
        self.gripper_position = self.space.gripper_open
        self.create_service(Trigger, "sim/reset", self._on_reset)
        self.episode = -1
        self.rejected_actions = 0
        self.paused = self.p["start_paused"]
        if self.paused:
            self.obs = self.env.reset(seed=self.p["seed"])  # a scene to publish, but no episode yet
        else:
            self._reset_episode()
        self.timer = self.create_timer(self.period, self._step)
        # Repeated at 1 Hz: a subscriber that starts late (volatile, as policy_node's) still gets it.
        self.instruction_timer = self.create_timer(1.0, self._publish_instruction)

    def _now(self):
        return self.get_clock().now()

    def _reset_episode(self) -> None:
        self.episode += 1
        self.paused = False
        self.obs = self.env.reset(seed=self.p["seed"] + self.episode)
        self.action, self.action_time = None, -np.inf
        self.gripper = -1.0
        self.gripper_position = self.space.gripper_open
        self.done = False
        self.episode_pub.publish(UInt32(data=self.episode))
        self._publish_instruction()
        self.get_logger().info(f"episode {self.episode} (seed {self.env.seed}): {self.env.instruction!r}")
        self._publish_sensors()

    def _publish_instruction(self) -> None:
        if self.p["publish_instruction"] and self.episode >= 0:
            self.instruction_pub.publish(String(data=self.env.instruction))

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self._reset_episode()
        response.success = True
        response.message = f"episode {self.episode} seed {self.env.seed}: {self.env.instruction}"
        return response

    def _seconds(self) -> float:
        return self._now().nanoseconds * 1e-9

    def _reject(self, error: Exception) -> None:
        self.rejected_actions += 1
        self.get_logger().warning(f"rejected command: {conv.brief(str(error), 200)}", throttle_duration_sec=1.0)

    def _on_action(self, msg: Float64MultiArray) -> None:
        try:
            self.action = conv.msg_to_action(msg, self.space.size)
        except conv.InvalidMessage as error:
            return self._reject(error)
        self.action_time = self._seconds()

    def _on_twist(self, msg: TwistStamped) -> None:
        try:
            self.action = conv.twist_to_action(msg, self.gripper_position, self.space, self.velocity_dt)
        except conv.InvalidMessage as error:
            return self._reject(error)
        self.action_time = self._seconds()

    def _on_gripper(self, msg: Float64MultiArray) -> None:
        try:
            self.gripper_position = conv.msg_to_gripper(msg)
        except conv.InvalidMessage as error:
            return self._reject(error)
        if self.action is not None:
            self.action[-1] = self.space.gripper_action(self.gripper_position)

    def _step(self) -> None:
        if self.paused or (self.done and not self.p["auto_reset"]):
            self._publish_sensors()  # a robot keeps publishing while idle
            return
        if self.done:
            self._reset_episode()
            return
        fresh = self.action is not None and (self._seconds() - self.action_time) * 1e3 <= self.p["action_timeout_ms"]
        action = self.action if fresh else np.array([0.0] * (self.space.size - 1) + [self.gripper])
        self.gripper = float(action[-1])
        self.obs, _, success, truncated, _ = self.env.step(np.clip(action, -1.0, 1.0))
        self._publish_sensors()
        self.success_pub.publish(Bool(data=bool(success)))
        if success or truncated:
            self.done = True
            self.end_pub.publish(Bool(data=bool(success)))
            self.get_logger().info(
                f"episode {self.episode} {'succeeded' if success else 'timed out'} after {self.env.steps} steps"
            )

    def _publish_sensors(self) -> None:
        stamp = self._now().to_msg()
        for camera, pub in self.image_pubs.items():
            pub.publish(conv.numpy_to_image(self.obs[f"{camera}_image"], stamp, camera))
        positions = np.concatenate([self.obs["joint_pos"], self.obs["gripper_qpos"]])
        velocities = np.concatenate([self.obs["joint_vel"], np.zeros(len(self.gripper_names))])
        self.joint_pub.publish(
            conv.numpy_to_joint_state(self.arm_names + self.gripper_names, positions, velocities, stamp)
        )
        self.pose_pub.publish(conv.numpy_to_pose(self.obs["eef_pos"], self.obs["eef_quat"], stamp, self.p["frame_id"]))


def main(args=None) -> None:
    rclpy.init(args=args)
    node = SimNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.env.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
