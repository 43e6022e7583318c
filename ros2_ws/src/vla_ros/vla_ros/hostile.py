"""`vla bench ros --hostile`: policy_node fed malformed messages of many kinds, interleaved with
valid robot data, as an integrator's worst day would.

policy_node runs as its own process (config/policy.yaml, as sim_demo.launch.py starts it) on
Fast DDS's large-data transport by default (so 4k and 8k frames really arrive; with Fast DDS's
default transports best-effort frames above ~1 MB never reach another process). This process plays the
robot: valid 128 px cameras, joint states and pose at 20 Hz, an instruction, and in phases:
- `mixed`: hostile sensor messages between the valid ones: the node must keep running;
- `invalid`: hostile messages only (valid data stops): from 250 ms on, no motion at all, and the
  diagnostics must say why;
then valid data again (it must move again). Measured: the node's own control rate and p99 jitter
(its 1 Hz diagnostics), its RSS (start, peak, end), motion while inputs were invalid, the reasons
it gave, and its rejection counters. JSON on stdout (and --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import struct
import time
from pathlib import Path

import numpy as np
import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from vla_ros import conversions as conv
from vla_ros.closed_loop import CONFIG_DIR, SHIPPED_CHECKPOINT, node_command, ros_processes
from vla_ros.policy_params import PARAMETERS
from vla_ros.qos import RELIABLE, SENSOR

ARM, GRIPPER = PARAMETERS["arm_joint_names"], PARAMETERS["gripper_joint_names"]
CAMERAS = ("agentview", "wrist")
SENSOR_KINDS = (  # malformed sensor messages: each must be refused
    "mono16_encoding",
    "data_too_short",
    "data_too_long",
    "zero_size",
    "step_too_small",
    "frame_4k",
    "frame_8k",
    "joints_nan",
    "joints_inf",
    "joints_unknown_names",
    "joints_missing",
    "joints_duplicated",
    "joints_length_mismatch",
    "joints_10000_names",
    "pose_nan",
    "pose_not_unit_quaternion",
    "pose_zero_quaternion",
    "camera_stamp_5s_ahead",
    "camera_stamp_5s_behind",
    "camera_stamp_years_ahead",
    "joints_stamp_5s_ahead",
)
INSTRUCTION_KINDS = ("instruction_100kB", "instruction_control_chars", "instruction_invalid_utf8")  # each must hold
RARE = {"frame_4k": 2.0, "frame_8k": 0.5, "joints_10000_names": 5.0}  # at most this many per second (they are big)


class HostileRobot(Node):
    """Publishes valid robot inputs and malformed ones of every kind above; records actions."""

    def __init__(self):
        super().__init__("hostile_robot")
        self.images = {c: self.create_publisher(Image, f"camera/{c}/image_raw", SENSOR) for c in CAMERAS}
        self.joints = self.create_publisher(JointState, "joint_states", SENSOR)
        self.pose = self.create_publisher(PoseStamped, "eef_pose", SENSOR)
        self.instruction = self.create_publisher(String, "vla/instruction", RELIABLE)
        self.actions: list[tuple[float, np.ndarray]] = []
        self.diagnostics: list[tuple[float, str, dict]] = []
        self.create_subscription(
            Float64MultiArray,
            "vla/action",
            lambda m: self.actions.append((time.monotonic(), np.asarray(m.data))),
            RELIABLE,
        )
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, RELIABLE)
        self.rng = np.random.default_rng(0)
        self.frame = self.rng.integers(0, 255, (128, 128, 3), np.uint8)
        self.big = {"frame_4k": np.zeros((2160, 3840, 3), np.uint8), "frame_8k": np.zeros((4320, 7680, 3), np.uint8)}
        self.sent: dict[str, int] = {}
        self.last_rare: dict[str, float] = {}

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "vla_ros: policy_node":
                self.diagnostics.append((time.monotonic(), status.message, {kv.key: kv.value for kv in status.values}))

    def stamp(self, offset: float = 0.0):
        return conv.seconds_to_stamp(self.get_clock().now().nanoseconds * 1e-9 + offset)

    def valid(self) -> None:
        stamp = self.stamp()
        for pub in self.images.values():
            pub.publish(conv.numpy_to_image(self.frame, stamp))
        self.joints.publish(
            conv.numpy_to_joint_state(ARM + GRIPPER, np.r_[np.linspace(-0.5, 0.5, 7), 0.02, -0.02], None, stamp)
        )
        self.pose.publish(conv.numpy_to_pose([0.5, 0.0, 1.0], [0.0, 1.0, 0.0, 0.0], stamp, "world"))

    def hostile(self, kind: str) -> bool:
        """Publish one malformed message of `kind`; False when a big kind is over its rate."""
        now = time.monotonic()
        if kind in RARE:
            if now - self.last_rare.get(kind, -1e9) < 1.0 / RARE[kind]:
                return False
            self.last_rare[kind] = now
        self._publish(kind)
        self.sent[kind] = self.sent.get(kind, 0) + 1
        return True

    def _publish(self, kind: str) -> None:
        stamp, camera = self.stamp(), self.images[CAMERAS[self.sent.get(kind, 0) % 2]]
        image = conv.numpy_to_image(self.frame, stamp)
        joints = conv.numpy_to_joint_state(ARM + GRIPPER, np.zeros(9), None, stamp)
        if kind == "mono16_encoding":
            image.encoding = "mono16"
        elif kind == "data_too_short":
            image.data = image.data[:-7]
        elif kind == "data_too_long":
            image.data = bytes(image.data) + b"\0" * 300
        elif kind == "zero_size":
            image.height = image.width = 0
        elif kind == "step_too_small":
            image.step = 10
        elif kind in self.big:
            image = conv.numpy_to_image(self.big[kind], stamp)
        elif kind.startswith("camera_stamp"):
            offset = {"camera_stamp_5s_ahead": 5.0, "camera_stamp_5s_behind": -5.0, "camera_stamp_years_ahead": 3e8}[
                kind
            ]
            image.header.stamp = self.stamp(offset)
        elif kind.startswith("joints") or kind.startswith("pose"):
            return self._publish_state(kind, stamp, joints)
        elif kind.startswith("instruction"):
            return self._publish_instruction(kind)
        else:
            raise ValueError(f"unknown hostile kind {kind!r}")
        camera.publish(image)

    def _publish_state(self, kind: str, stamp, joints: JointState) -> None:
        if kind == "joints_nan":
            joints.position[3] = float("nan")
        elif kind == "joints_inf":
            joints.position[0] = float("inf")
        elif kind == "joints_unknown_names":
            joints.name = [f"elbow_{i}" for i in range(9)]
        elif kind == "joints_missing":
            joints.name, joints.position = joints.name[:5], joints.position[:5]
        elif kind == "joints_duplicated":
            joints.name = list(joints.name[:8]) + [joints.name[0]]
        elif kind == "joints_length_mismatch":
            joints.position = joints.position[:4]
        elif kind == "joints_10000_names":
            joints = conv.numpy_to_joint_state([f"j{i}" for i in range(10_000)], np.zeros(10_000), None, stamp)
        elif kind == "joints_stamp_5s_ahead":
            joints.header.stamp = self.stamp(5.0)
        elif kind.startswith("pose"):
            quat = {
                "pose_nan": [1, 0, 0, 0],
                "pose_not_unit_quaternion": [3.0, 0, 0, 0],
                "pose_zero_quaternion": [0, 0, 0, 0],
            }[kind]
            pos = [float("nan"), 0, 0] if kind == "pose_nan" else [0.5, 0, 1.0]
            return self.pose.publish(conv.numpy_to_pose(pos, quat, stamp, "world"))
        self.joints.publish(joints)

    def _publish_instruction(self, kind: str) -> None:
        if kind == "instruction_100kB":
            return self.instruction.publish(String(data="lift the cube " * 7200))
        if kind == "instruction_control_chars":
            return self.instruction.publish(String(data="lift the cube\x1b[2J\x07"))
        bad = "lift the ".encode() + b"\xff\xfe cube"  # invalid UTF-8, as raw CDR bytes
        self.instruction.publish(b"\x00\x01\x00\x00" + struct.pack("<I", len(bad) + 1) + bad + b"\x00")

    def spin_for(self, seconds: float, valid_hz: float = 20.0, hostile_kinds=(), hostile_hz: float = 0.0) -> None:
        end, next_valid, next_hostile = time.monotonic() + seconds, time.monotonic(), time.monotonic()
        cycle = list(hostile_kinds)
        while time.monotonic() < end:
            now = time.monotonic()
            if valid_hz and now >= next_valid:
                self.valid()
                next_valid += 1.0 / valid_hz
            if cycle and now >= next_hostile:
                kind = cycle[int(self.rng.integers(len(cycle)))]
                self.hostile(kind)
                next_hostile = max(next_hostile + 1.0 / hostile_hz, now - 0.1)
            rclpy.spin_once(self, timeout_sec=0.0005)


def run(
    checkpoint: Path,
    out_dir: Path,
    phases: int = 4,
    phase_s: float = 6.0,
    hostile_hz: float = 250.0,
    skip: tuple[str, ...] = (),
    overrides: dict | None = None,
    transports: str = "LARGE_DATA",
) -> dict:
    domain = random.Random(os.getpid() ^ time.time_ns()).randrange(1, 200)
    unknown = set(skip) - set(SENSOR_KINDS + INSTRUCTION_KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; kinds: {SENSOR_KINDS + INSTRUCTION_KINDS}")
    params = {"checkpoint": str(checkpoint), "device": "cpu", **(overrides or {})}
    nodes = {"policy_node": node_command("policy_node", CONFIG_DIR / "policy.yaml", params)}
    # Fast DDS reads its transports when a participant is made: this process's and the node's.
    with _environment("FASTDDS_BUILTIN_TRANSPORTS", transports), ros_processes(nodes, domain, out_dir) as procs:
        rclpy.init(domain_id=domain)
        robot = HostileRobot()
        try:
            sensor = tuple(k for k in SENSOR_KINDS if k not in skip)
            instruction = tuple(k for k in INSTRUCTION_KINDS if k not in skip)
            result = _measure(
                robot,
                psutil.Process(procs["policy_node"].pid),
                procs["policy_node"],
                phases,
                phase_s,
                hostile_hz,
                sensor,
                instruction,
            )
            return {
                **result,
                "skipped_kinds": list(skip),
                "policy_node_overrides": overrides or {},
                "fastdds_builtin_transports": transports,
            }
        finally:
            robot.destroy_node()
            rclpy.try_shutdown()


@contextlib.contextmanager
def _environment(name: str, value: str):
    """Set one environment variable for the duration of the block, and put it back after."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _moving(actions, since: float, until: float = float("inf")) -> int:
    return sum(1 for t, a in actions if since <= t < until and np.any(a[:-1] != 0.0))


def _measure(
    robot: HostileRobot,
    process: psutil.Process,
    proc,
    phases: int,
    phase_s: float,
    hostile_hz: float,
    sensor_kinds: tuple[str, ...],
    instruction_kinds: tuple[str, ...],
) -> dict:
    deadline = time.monotonic() + 120
    robot.instruction.publish(String(data="pick up the red cube"))
    while not _moving(robot.actions, time.monotonic() - 0.5):
        assert time.monotonic() < deadline and proc.poll() is None, "policy_node never moved on valid input"
        robot.spin_for(0.5)
        robot.instruction.publish(String(data="pick up the red cube"))
    robot.spin_for(5.0)  # settle: allocator, caches
    rss_start, rss_peak, started = process.memory_info().rss, 0, time.monotonic()
    invalid_windows, mixed_windows, recovered = [], [], []
    for _ in range(phases):
        t0 = time.monotonic()
        robot.spin_for(phase_s, hostile_kinds=sensor_kinds, hostile_hz=hostile_hz)
        mixed_windows.append((t0, time.monotonic()))
        rss_peak = max(rss_peak, process.memory_info().rss)
        t0 = time.monotonic()
        robot.spin_for(phase_s, valid_hz=0.0, hostile_kinds=sensor_kinds + instruction_kinds, hostile_hz=hostile_hz)
        invalid_windows.append((t0, time.monotonic()))
        rss_peak = max(rss_peak, process.memory_info().rss)
        t0 = time.monotonic()
        robot.instruction.publish(String(data="pick up the red cube"))
        while not _moving(robot.actions, t0) and time.monotonic() < t0 + 10:
            robot.spin_for(0.2)
            robot.instruction.publish(String(data="pick up the red cube"))
        recovered.append(round(time.monotonic() - t0, 2) if _moving(robot.actions, t0) else None)
        robot.spin_for(2.0)
    rss_end = process.memory_info().rss
    running = [(t, d) for t, m, d in robot.diagnostics if t > started and m.startswith("running")]
    in_invalid = [m for t, m, _ in robot.diagnostics if any(a + 1.0 < t <= b for a, b in invalid_windows)]
    return {
        "benchmark": "ros_hostile",
        "alive": proc.poll() is None,
        "messages": {
            "hostile": sum(robot.sent.values()),
            "kinds": len(robot.sent),
            "per_kind": dict(sorted(robot.sent.items())),
        },
        "control_rate_hz_min": min((float(d["control_rate_hz"]) for _, d in running), default=None),
        "control_jitter_p99_ms_max": max((float(d["control_jitter_p99_ms"]) for _, d in running), default=None),
        "control_jitter_p99_ms_median": float(np.median([float(d["control_jitter_p99_ms"]) for _, d in running]))
        if running
        else None,
        "rss_mb": {
            "start": round(rss_start / 2**20, 1),
            "peak": round(rss_peak / 2**20, 1),
            "end": round(rss_end / 2**20, 1),
            "growth": round((rss_end - rss_start) / 2**20, 1),
        },
        "moving_ticks_while_invalid": sum(_moving(robot.actions, a + 0.25, b) for a, b in invalid_windows),
        "moving_ticks_while_mixed": sum(_moving(robot.actions, a, b) for a, b in mixed_windows),
        "hold_reasons_while_invalid": sorted(
            {" ".join(m.split()[:3]) for m in in_invalid}
        ),  # "holding: stale inputs", ...
        "recovered_after_s": recovered,
        "rejected": {
            k: v
            for k, v in (robot.diagnostics[-1][2] if robot.diagnostics else {}).items()
            if k.startswith("rejected/")
        },
        "goals": {
            "rate_hz": ">= 49.5",
            "jitter_p99_ms": "< 2",
            "rss_growth_mb": "< 50",
            "moving_ticks_while_invalid": 0,
        },
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="vla bench ros --hostile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--phases", type=int, default=4, help="mixed + invalid + recovery rounds")
    p.add_argument("--phase-seconds", type=float, default=6.0)
    p.add_argument("--hostile-hz", type=float, default=250.0, help="malformed messages per second")
    p.add_argument("--skip", default="", help="comma-separated kinds to leave out")
    p.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE", help="a policy_node parameter")
    p.add_argument(
        "--transports",
        default="LARGE_DATA",
        help="FASTDDS_BUILTIN_TRANSPORTS (DEFAULT drops best-effort frames above ~1 MB between processes)",
    )
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    overrides = dict(o.split(":=", 1) for o in args.set)
    result = run(
        Path(args.checkpoint),
        Path("runs/bench_ros_hostile"),
        args.phases,
        args.phase_seconds,
        args.hostile_hz,
        tuple(k for k in args.skip.split(",") if k),
        overrides,
        args.transports,
    )
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
