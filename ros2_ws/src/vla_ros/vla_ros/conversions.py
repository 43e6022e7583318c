"""The only module that knows both ROS messages and numpy.

Every `*_to_numpy` validates its message and raises `InvalidMessage` saying what was wrong, so
a node can reject bad input with one except clause and never crash on it.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_policy.data.images import decode_rgb
from vla_policy.types import ActionChunk

# The 7-d action space of vla_stack checkpoints: OSC end-effector delta + gripper.
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


class InvalidMessage(ValueError):
    """A message that cannot be used: wrong encoding, size mismatch, non-finite values, unknown names."""


# ----------------------------------------------------------------------- time
def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def seconds_to_duration(seconds: float) -> Duration:
    sec = math.floor(seconds)
    return Duration(sec=int(sec), nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


# --------------------------------------------------------------------- images
def image_to_numpy(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8/bgr8 Image (row padding in `step` is honoured)."""
    try:
        return decode_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
    except ValueError as error:
        raise InvalidMessage(str(error)) from None


def numpy_to_image(pixels: np.ndarray, stamp: Time, frame_id: str = "") -> Image:
    """An rgb8 Image from (H, W, 3) uint8 RGB."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", is_bigendian=0, step=pixels.shape[1] * 3)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg


# --------------------------------------------------------------------- joints
def joint_state_to_numpy(msg: JointState, names: list[str]) -> np.ndarray:
    """(len(names),) float64 positions of the named joints, in `names` order (the message's order
    does not matter; joints it carries beyond `names` are ignored)."""
    if len(msg.position) != len(msg.name):
        raise InvalidMessage(f"joint_states has {len(msg.name)} names but {len(msg.position)} positions")
    index = {name: i for i, name in enumerate(msg.name)}
    if len(index) != len(msg.name):
        raise InvalidMessage(f"joint_states repeats a joint name: {list(msg.name)}")
    missing = [n for n in names if n not in index]
    if missing:
        raise InvalidMessage(f"joint_states lacks joint(s) {missing}; it names {list(msg.name)}")
    positions = np.array([msg.position[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise InvalidMessage(f"joint_states carries NaN/inf positions: {positions.tolist()}")
    return positions


def numpy_to_joint_state(names: list[str], positions: np.ndarray, velocities: np.ndarray | None,
                         stamp: Time) -> JointState:
    msg = JointState(name=list(names), position=[float(x) for x in positions])
    if velocities is not None:
        msg.velocity = [float(x) for x in velocities]
    msg.header.stamp = stamp
    return msg


# ----------------------------------------------------------------------- pose
def pose_to_numpy(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    """(3,) position and (4,) (w, x, y, z) unit quaternion (vla_stack's `eef_pos`, `eef_quat`)."""
    p, q = msg.pose.position, msg.pose.orientation
    pos, quat = np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z])
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
        raise InvalidMessage("end-effector pose carries NaN/inf")
    norm = np.linalg.norm(quat)
    if not 0.9 < norm < 1.1:
        raise InvalidMessage(f"end-effector orientation is not a unit quaternion (norm {norm:.3f})")
    return pos, quat / norm


def numpy_to_pose(pos: np.ndarray, quat_wxyz: np.ndarray, stamp: Time, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
    q = msg.pose.orientation
    q.w, q.x, q.y, q.z = (float(v) for v in quat_wxyz)
    return msg


# -------------------------------------------------------------------- actions
def action_to_msg(action: np.ndarray) -> Float64MultiArray:
    msg = Float64MultiArray(data=np.asarray(action, dtype=np.float64).tolist())
    msg.layout.dim = [MultiArrayDimension(label="action", size=len(action), stride=len(action))]
    return msg


def msg_to_action(msg: Float64MultiArray, size: int) -> np.ndarray:
    action = np.asarray(msg.data, dtype=np.float64)
    if action.shape != (size,):
        raise InvalidMessage(f"action has {action.size} values; expected {size}")
    if not np.all(np.isfinite(action)):
        raise InvalidMessage(f"action carries NaN/inf: {action.tolist()}")
    return action


def chunk_to_trajectory(chunk: ActionChunk, start: Time, frame_id: str = "") -> JointTrajectory:
    """The whole chunk as a JointTrajectory: one point per action, `time_from_start` = i * dt."""
    msg = JointTrajectory(joint_names=list(ACTION_NAMES[: chunk.actions.shape[1]]))
    msg.header.stamp, msg.header.frame_id = start, frame_id
    msg.points = [
        JointTrajectoryPoint(positions=[float(x) for x in row], time_from_start=seconds_to_duration(i * chunk.dt))
        for i, row in enumerate(chunk.actions)
    ]
    return msg
