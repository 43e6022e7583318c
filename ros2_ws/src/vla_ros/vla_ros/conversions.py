"""The only module that knows both ROS messages and numpy.

Every `*_to_numpy` validates its message and raises `InvalidMessage` saying what was wrong, so
a node can reject bad input with one except clause and never crash on it.
"""

from __future__ import annotations

import io
import math
import unicodedata

import cv2
import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_policy.action_space import ActionSpace
from vla_policy.data.images import decode_rgb
from vla_policy.types import ActionChunk

# The 7-d action space of vla_stack checkpoints: OSC end-effector delta + gripper.
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


class InvalidMessage(ValueError):
    """A message that cannot be used: wrong encoding, size mismatch, non-finite values, unknown names."""


def brief(value, limit: int = 120) -> str:
    """`value` as text of at most `limit` characters, for log lines about hostile input."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


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
def _check_size(height: int, width: int, max_pixels: int | None) -> None:
    if max_pixels is not None and height * width > max_pixels:
        raise InvalidMessage(
            f"image is {width}x{height} = {height * width} pixels; at most {max_pixels} "
            f"are accepted (parameter max_image_pixels)"
        )


def image_to_numpy(msg: Image, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8/bgr8 Image (row padding in `step` is honoured); frames
    larger than `max_pixels` are refused before their data is touched."""
    _check_size(msg.height, msg.width, max_pixels)
    try:
        return decode_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
    except ValueError as error:
        raise InvalidMessage(str(error)) from None


def compressed_image_to_numpy(
    msg: CompressedImage, max_pixels: int | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a jpeg/png CompressedImage (image_transport's compressed
    transport). Size limits are checked on the bytes and on the header before decoding."""
    if max_bytes is not None and len(msg.data) > max_bytes:
        raise InvalidMessage(f"compressed image has {len(msg.data)} bytes; at most {max_bytes} are accepted")
    data = bytes(msg.data)
    try:
        with PILImage.open(io.BytesIO(data)) as header:  # reads the header only
            width, height = header.size
            kind = header.format
    except Exception as error:  # PIL raises several types for garbage
        raise InvalidMessage(
            f"compressed image (format {brief(msg.format, 40)!r}) is not a readable jpeg/png: {brief(str(error), 80)}"
        ) from None
    if kind not in ("JPEG", "PNG"):
        raise InvalidMessage(f"compressed image is {kind}; jpeg or png are accepted")
    _check_size(height, width, max_pixels)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.shape[:2] != (height, width):
        raise InvalidMessage(f"compressed {kind} image ({width}x{height}) could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def numpy_to_compressed_image(
    pixels: np.ndarray, stamp: Time, kind: str = "jpeg", quality: int = 95
) -> CompressedImage:
    """A CompressedImage as image_transport's compressed publisher makes it (format `rgb8; jpeg compressed bgr8`)."""
    ok, data = cv2.imencode(
        f".{'jpg' if kind == 'jpeg' else kind}",
        cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, quality] if kind == "jpeg" else [],
    )
    if not ok:
        raise ValueError(f"could not encode a {pixels.shape} image as {kind}")
    msg = CompressedImage(format=f"rgb8; {kind} compressed bgr8", data=data.tobytes())
    msg.header.stamp = stamp
    return msg


def fit_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8: a frame larger than the model's input centre-cropped to a square
    and area-averaged down on arrival (as vla_policy.data.images.preprocess_images does), so the
    node keeps model-size frames only. Smaller frames are returned as they are."""
    h, w = pixels.shape[:2]
    side = min(h, w)
    if side <= size:
        return pixels
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(pixels[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------- instructions
def instruction_text(data, max_chars: int) -> str:
    """An instruction as the policy may read it: text of at most `max_chars` characters, no
    control or unassigned characters, whitespace collapsed. InvalidMessage otherwise."""
    if not isinstance(data, str):
        raise InvalidMessage(f"instruction is {type(data).__name__}, not text")
    if len(data) > max_chars:
        raise InvalidMessage(
            f"instruction has {len(data)} characters; at most {max_chars} are accepted "
            f"(parameter max_instruction_chars): {brief(data, 60)!r}"
        )
    if "\ufffd" in data:  # what rclpy decodes invalid UTF-8 bytes to
        raise InvalidMessage(f"instruction is not valid UTF-8: {brief(data, 60)!r}")
    bad = sorted({c for c in data if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and c not in "\t\n"})
    if bad:
        raise InvalidMessage(
            f"instruction carries control or unassigned characters {brief([hex(ord(c)) for c in bad], 60)}: "
            f"{brief(data, 60)!r}"
        )
    return " ".join(data.split())


def numpy_to_image(pixels: np.ndarray, stamp: Time, frame_id: str = "") -> Image:
    """An rgb8 Image from (H, W, 3) uint8 RGB."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
    msg = Image(
        height=pixels.shape[0], width=pixels.shape[1], encoding="rgb8", is_bigendian=0, step=pixels.shape[1] * 3
    )
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
        raise InvalidMessage(f"joint_states repeats a joint name: {brief(list(msg.name))}")
    missing = [n for n in names if n not in index]
    if missing:
        raise InvalidMessage(f"joint_states lacks joint(s) {brief(missing)}; it names {brief(list(msg.name))}")
    positions = np.array([msg.position[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise InvalidMessage(f"joint_states carries NaN/inf positions: {brief(positions.tolist())}")
    return positions


def numpy_to_joint_state(
    names: list[str], positions: np.ndarray, velocities: np.ndarray | None, stamp: Time
) -> JointState:
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


def action_to_twist(action: np.ndarray, space: ActionSpace, stamp: Time) -> tuple[TwistStamped, Float64MultiArray]:
    """A normalised end-effector action as the velocity it commands (m/s, rad/s in the space's
    frame; MoveIt Servo / Cartesian velocity controllers) and the gripper position command
    (ros2_control forward-command convention, one value per finger)."""
    linear, angular, gripper = space.to_velocity(action)
    twist = TwistStamped()
    twist.header.stamp, twist.header.frame_id = stamp, space.frame
    twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = (float(v) for v in linear)
    twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = (float(v) for v in angular)
    return twist, Float64MultiArray(data=[gripper, gripper])


def twist_to_action(twist: TwistStamped, gripper: float, space: ActionSpace, step_dt: float) -> np.ndarray:
    """The normalised action a robot stepping every `step_dt` s applies for this velocity."""
    t = twist.twist
    linear, angular = [t.linear.x, t.linear.y, t.linear.z], [t.angular.x, t.angular.y, t.angular.z]
    if not np.all(np.isfinite(linear + angular)):
        raise InvalidMessage(f"twist carries NaN/inf: {linear + angular}")
    if twist.header.frame_id not in ("", space.frame):
        raise InvalidMessage(
            f"twist is in frame {brief(twist.header.frame_id, 40)!r}; this robot takes {space.frame!r}"
        )
    return space.from_velocity(linear, angular, gripper, step_dt)


def msg_to_gripper(msg: Float64MultiArray) -> float:
    """The gripper position of a forward-command message (the fingers' mean)."""
    values = np.asarray(msg.data, dtype=np.float64)
    if values.size == 0 or values.size > 2 or not np.all(np.isfinite(values)):
        raise InvalidMessage(f"gripper command must be 1 or 2 finite positions, got {brief(values.tolist())}")
    return float(values.mean())


def joint_targets_to_trajectory(
    chunk: ActionChunk, joint_names: list[str], start: Time, from_time: float
) -> JointTrajectory:
    """A joint-position chunk (joint_trajectory_controller's input) from `from_time` seconds after
    its anchor: the points still ahead, each with its `time_from_start`."""
    if chunk.action_space != "joint_position":
        raise ValueError(
            f"a JointTrajectory command needs a joint_position checkpoint; this chunk is {chunk.action_space!r}"
        )
    first = max(0, int(math.ceil(from_time / chunk.dt - 1e-9)))
    msg = JointTrajectory(joint_names=list(joint_names))
    msg.header.stamp = start
    msg.points = [
        JointTrajectoryPoint(
            positions=[float(x) for x in chunk.actions[i, : len(joint_names)]],
            time_from_start=seconds_to_duration((i - first + 1) * chunk.dt),
        )
        for i in range(first, len(chunk))
    ]
    return msg


def chunk_to_trajectory(chunk: ActionChunk, start: Time, frame_id: str = "") -> JointTrajectory:
    """The whole chunk as a JointTrajectory: one point per action, `time_from_start` = i * dt."""
    msg = JointTrajectory(joint_names=list(ACTION_NAMES[: chunk.actions.shape[1]]))
    msg.header.stamp, msg.header.frame_id = start, frame_id
    msg.points = [
        JointTrajectoryPoint(positions=[float(x) for x in row], time_from_start=seconds_to_duration(i * chunk.dt))
        for i, row in enumerate(chunk.actions)
    ]
    return msg
