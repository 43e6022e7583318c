"""What policy_node sends to the robot each control tick, in the interface its driver takes.

Every kind publishes the normalised action on `vla/action` (tools, sim_node, recordings); beside it
`output` chooses a standard command interface, converted exactly with the checkpoint's action
space (frame, per-step scale, control period), so the motion does not depend on the robot's step
rate:
- `twist`: geometry_msgs/TwistStamped on `vla/cmd_twist` in m/s and rad/s in the robot's base
  frame (MoveIt Servo, Cartesian velocity controllers) and the gripper position on
  `vla/gripper_command` (std_msgs/Float64MultiArray, ros2_control's forward-command convention);
- `joint_trajectory`: trajectory_msgs/JointTrajectory on `vla/joint_trajectory` for joint-space
  checkpoints (joint_trajectory_controller): the current chunk's points still ahead, and an
  empty trajectory (the controller holds its position) on a hold.
"""

from __future__ import annotations

from geometry_msgs.msg import TwistStamped
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from vla_policy.action_space import CARTESIAN, ActionSpace
from vla_ros import conversions as conv
from vla_ros.qos import RELIABLE

OUTPUTS = {"action": None, "twist": CARTESIAN, "joint_trajectory": ("joint_position",)}  # kind -> spaces it takes


class CommandOutputs:
    """The lifecycle publishers of one output kind, created on configure."""

    def __init__(self, node, kind: str, space: ActionSpace, joint_names: list[str]):
        if kind not in OUTPUTS:
            raise ValueError(f"unknown output {kind!r}; choose one of {sorted(OUTPUTS)}")
        needs = OUTPUTS[kind]
        if needs is not None and space.name not in needs:
            raise ValueError(
                f"output {kind!r} needs a {' or '.join(needs)} checkpoint; this one's action space is {space.name!r}"
            )
        self.node, self.kind, self.space, self.joint_names = node, kind, space, joint_names
        self.publishers = {"action": node.create_lifecycle_publisher(Float64MultiArray, "vla/action", RELIABLE)}
        if kind == "twist":
            self.publishers["twist"] = node.create_lifecycle_publisher(TwistStamped, "vla/cmd_twist", RELIABLE)
            self.publishers["gripper"] = node.create_lifecycle_publisher(
                Float64MultiArray, "vla/gripper_command", RELIABLE
            )
        if kind == "joint_trajectory":
            self.publishers["trajectory"] = node.create_lifecycle_publisher(
                JointTrajectory, "vla/joint_trajectory", RELIABLE
            )

    def publish(self, action, now: float, chunk=None, chunk_start: float | None = None) -> None:
        """One tick's command; `chunk` (played from `chunk_start`) feeds the joint trajectory."""
        self.publishers["action"].publish(conv.action_to_msg(action))
        stamp = conv.seconds_to_stamp(now)
        if self.kind == "twist":
            twist, gripper = conv.action_to_twist(action, self.space, stamp)
            self.publishers["twist"].publish(twist)
            self.publishers["gripper"].publish(gripper)
        elif self.kind == "joint_trajectory":
            # An empty trajectory makes joint_trajectory_controller hold where the joints are.
            trajectory = (
                JointTrajectory(joint_names=list(self.joint_names))
                if chunk is None
                else conv.joint_targets_to_trajectory(chunk, self.joint_names, stamp, now - chunk_start)
            )
            trajectory.header.stamp = stamp
            self.publishers["trajectory"].publish(trajectory)

    def destroy(self) -> None:
        for publisher in self.publishers.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}
