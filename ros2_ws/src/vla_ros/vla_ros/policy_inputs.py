"""policy_node's subscription callbacks: each message is converted and checked (conversions.py),
refused with a counted, once-a-second warning per kind when it is bad, and handed to the node's
InputBuffer (or, for instructions, replaces the goal)."""

from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import String

from vla_ros import conversions as conv


class InputCallbacks:
    """Mixed into PolicyNode: uses its cfg, inputs, policy, rejected counters and _void_plan."""

    def _reject(self, kind: str, error) -> None:
        """Count a refused message and say why, at most once a second per kind and briefly."""
        self.rejected[kind] = self.rejected.get(kind, 0) + 1
        now = time.monotonic()
        if now - self._last_reject_log.get(kind, -np.inf) >= 1.0:
            self._last_reject_log[kind] = now
            self.get_logger().warning(
                f"rejected {kind} message ({self.rejected[kind]} so far): {conv.brief(str(error), 200)}"
            )

    def _put(self, stream: str, stamp, value) -> None:
        refused = self.inputs.put(stream, conv.stamp_to_seconds(stamp), value, self._now())
        if refused:
            self._reject(f"{stream} stamp", refused)

    def _on_image(self, camera: str, serialized: bytes) -> None:
        try:
            if len(serialized) > self.max_image_message_bytes:
                raise conv.InvalidMessage(
                    f"image message has {len(serialized)} bytes; at most "
                    f"{self.max_image_message_bytes:.0f} fit max_image_pixels / max_compressed_bytes"
                )
            msg = deserialize_message(serialized, self.image_type)
            if isinstance(msg, CompressedImage):
                pixels = conv.compressed_image_to_numpy(msg, self.cfg.max_image_pixels, self.cfg.max_compressed_bytes)
            else:
                pixels = conv.image_to_numpy(msg, self.cfg.max_image_pixels)
        except conv.InvalidMessage as error:
            return self._reject(f"camera/{camera}", error)
        pixels = conv.fit_image(pixels, self.policy.config.model.vision.image_size)  # keep model-size frames only
        self._put(f"camera/{camera}", msg.header.stamp, {f"{camera}_image": pixels})

    def _on_joints(self, msg: JointState) -> None:
        arm, gripper = self.cfg.arm_joint_names, self.cfg.gripper_joint_names
        try:
            positions = conv.joint_state_to_numpy(msg, arm + gripper)
        except conv.InvalidMessage as error:
            return self._reject("joint_states", error)
        self._put(
            "joint_states",
            msg.header.stamp,
            {"joint_pos": positions[: len(arm)], "gripper_qpos": positions[len(arm) :]},
        )

    def _on_pose(self, msg: PoseStamped) -> None:
        try:
            pos, quat = conv.pose_to_numpy(msg)
        except conv.InvalidMessage as error:
            return self._reject("eef_pose", error)
        self._put("eef_pose", msg.header.stamp, {"eef_pos": pos, "eef_quat": quat})

    def _on_instruction(self, msg: String) -> None:
        try:
            text = conv.instruction_text(msg.data, self.cfg.max_instruction_chars)
            self.instruction_error = None
        except conv.InvalidMessage as error:  # a refused instruction replaces the last one: hold
            self._reject("vla/instruction", error)
            text, self.instruction_error = None, f"instruction refused: {conv.brief(str(error), 120)}"
        check = getattr(self.policy, "check_instruction", None)  # the checkpoint's instruction gate
        if text is not None and check is not None:
            verdict = check(text)
            if not verdict.accepted:  # understood as nothing this policy can do: hold, and say why
                self.instruction_error = conv.brief(verdict.reason, 240)
                if text != self.not_understood:  # sources repeat their instruction: say it once
                    self.get_logger().warning(self.instruction_error)
                self.not_understood, text = text, None
        if self.inputs.set_instruction(text):
            self._void_plan()  # chunks for the old instruction must not be played
            if text is not None:
                self.get_logger().info(f"instruction: {conv.brief(text)!r}")
