"""The ROS closed loop without `ros2 launch`: sim_node + policy_node started exactly as
launch/sim_demo.launch.py declares them (same executables, same parameter files), on a private
ROS domain, driven by a small rclpy node that resets episodes, waits for their outcome and
keeps the camera frames for a video. `make demo` runs it; the tests and `vla bench ros` use it.

    ros_demo --checkpoint checkpoints/default --episodes 3 --out runs/demo
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, String, UInt32
from std_srvs.srv import Trigger

from vla_policy.action_space import from_meta
from vla_policy.eval.video import write_video
from vla_ros.conversions import image_to_numpy
from vla_ros.qos import LATCHED, RELIABLE, SENSOR

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the source tree (pip install -e)


def _config_dir() -> Path:
    if (PACKAGE_DIR / "config").is_dir():
        return PACKAGE_DIR / "config"
    from ament_index_python.packages import get_package_share_directory  # a colcon install

    return Path(get_package_share_directory("vla_ros")) / "config"


CONFIG_DIR = _config_dir()
SHIPPED_CHECKPOINT = PACKAGE_DIR.parents[2] / "checkpoints" / "default"


def ros_value(value) -> str:
    """A parameter value as `-p name:=value` expects it (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    return str(value) if value != "" else "''"  # `name:=` alone does not parse


def find_executable(name: str) -> str:
    """A vla_ros console script: beside this Python (its venv's bin/, even when not activated),
    else on PATH (a sourced colcon install)."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.is_file() else shutil.which(name)
    if path is None:
        raise FileNotFoundError(
            f"executable {name!r} is neither in {beside.parent} nor on PATH; install the package "
            f"(pip install -e ros2_ws/src/vla_ros, or colcon build and source install/setup.bash)"
        )
    return path


def node_command(executable: str, params_file: str | None, overrides: dict) -> list[str]:
    """The command line `ros2 launch` would run for a vla_ros Node with these parameters."""
    command = [find_executable(executable), "--ros-args"] + (["--params-file", str(params_file)] if params_file else [])
    for name, value in overrides.items():
        command += ["-p", f"{name}:={ros_value(value)}"]
    return command


@contextmanager
def ros_processes(commands: dict[str, list[str]], domain_id: int, log_dir: Path):
    """Start each command (with ROS_DOMAIN_ID) logging to log_dir/<name>.log; stop them all on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ROS_DOMAIN_ID": str(domain_id),
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONUNBUFFERED": "1",
    }
    procs = {}
    try:
        for name, command in commands.items():
            log = open(log_dir / f"{name}.log", "w")
            procs[name] = (subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log)
        yield {name: proc for name, (proc, _) in procs.items()}
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(2)  # SIGINT: nodes close cleanly (the recorder finishes its bag)
        for name, (proc, log) in procs.items():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def task_parameters(task: str, checkpoint: str | Path) -> tuple[dict, dict]:
    """What differs from the parameter files (the Panda's) for a task: a Meta-World task publishes
    the cameras and image size the checkpoint's data was collected with (policy_node brings frames
    to the model's size as training did) and the Sawyer's joints. -> (sim_node, policy_node)."""
    from sim.tasks import get_task

    if get_task(task).env_type != "metaworld":
        return {}, {}
    from sim.metaworld_env import ARM_JOINTS, GRIPPER_OPENING_JOINT

    meta = json.loads((Path(checkpoint) / "meta.json").read_text())
    collected, step_dt = meta["env_args"]["env_kwargs"], from_meta(meta).dt
    sim = {"cameras": list(collected["cameras"]), "image_size": collected["image_size"]}
    policy = {"arm_joint_names": list(ARM_JOINTS), "gripper_joint_names": [GRIPPER_OPENING_JOINT]}
    # Commands at twice the sim's step rate: two unsynchronised loops at one rate make a sim step
    # now and then play a command twice or skip one (drawer-close through the nodes: 4/10 at
    # 80 Hz, 15/20 at 160 Hz; docs/RESULTS.md). The flow head's own Euler steps, as `vla eval`
    # measured it (policy.yaml's 5 are for the tabletop's latency budget).
    return sim, {**policy, "control_rate_hz": 2.0 / step_dt, "flow_steps": 0}


def sim_demo_commands(
    checkpoint: str | Path,
    task: str = "tabletop",
    device: str = "auto",
    seed: int = 1_000_000,
    record: str | None = None,
    sim: dict | None = None,
    policy: dict | None = None,
) -> dict[str, list[str]]:
    """sim_demo.launch.py's nodes as commands; `sim`/`policy` add parameter overrides."""
    commands = {
        "sim_node": node_command(
            "sim_node",
            CONFIG_DIR / "sim.yaml",
            {"task": task, "seed": seed, "start_paused": True, **(sim or {})},
        ),
        "policy_node": node_command(
            "policy_node",
            CONFIG_DIR / "policy.yaml",
            {"checkpoint": str(checkpoint), "device": device, **(policy or {})},
        ),
    }
    if record:
        commands["recorder_node"] = node_command("recorder_node", CONFIG_DIR / "recorder.yaml", {"output": record})
    return commands


class Driver(Node):
    """Resets episodes, waits for their outcome, keeps frames and the policy's diagnostics."""

    def __init__(self, camera: str = "agentview"):
        super().__init__("vla_demo_driver")
        self.frames: list[np.ndarray] = []
        self.keep_frames = False
        self.episode, self.ended, self.instruction = -1, None, ""
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_message = ""
        self.create_subscription(Image, f"camera/{camera}/image_raw", self._on_frame, SENSOR)
        self.create_subscription(UInt32, "sim/episode", lambda m: setattr(self, "episode", m.data), LATCHED)
        self.create_subscription(Bool, "sim/episode_end", lambda m: setattr(self, "ended", m.data), LATCHED)
        self.create_subscription(String, "vla/instruction", lambda m: setattr(self, "instruction", m.data), LATCHED)
        self.create_subscription(DiagnosticArray, "diagnostics", self._on_diagnostics, 10)
        self.surprises: list[float] = []  # the world model's scores of played chunks, this episode
        self.create_subscription(Float32, "vla/world_model/surprise", lambda m: self.surprises.append(m.data), RELIABLE)
        self.reset_client = self.create_client(Trigger, "sim/reset")

    def _on_frame(self, msg: Image) -> None:
        if self.keep_frames:
            self.frames.append(image_to_numpy(msg))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "vla_ros: policy_node":
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                self.diagnostics_message = status.message

    def spin_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            rclpy.spin_once(self, timeout_sec=0.05)

    def run_episode(self, index: int, timeout: float) -> dict:
        self.spin_until(lambda: self.reset_client.service_is_ready(), 60, "the sim_node's sim/reset service")
        self.ended, self.surprises = None, []
        future = self.reset_client.call_async(Trigger.Request())
        self.spin_until(future.done, 30, "sim/reset")
        self.spin_until(lambda: self.episode == index, 10, f"episode {index} to start")
        start, self.keep_frames = time.monotonic(), True
        self.spin_until(lambda: self.ended is not None, timeout, f"episode {index} to end")
        self.keep_frames = False
        return {
            "episode": index,
            "success": bool(self.ended),
            "seconds": round(time.monotonic() - start, 2),
            "instruction": self.instruction,
            "diagnostics": dict(self.diagnostics),
            "surprise": [round(float(x), 5) for x in self.surprises],
        }


def run_closed_loop(
    checkpoint: str | Path,
    episodes: int,
    out: str | Path,
    task: str = "tabletop",
    device: str = "auto",
    seed: int = 1_000_000,
    record: str | None = None,
    episode_timeout: float = 120.0,
    sim: dict | None = None,
    policy: dict | None = None,
    on_running=None,
) -> dict:
    """Run `episodes` episodes through the two nodes; returns (and writes to out/report.json) a summary.
    `on_running(driver)` is called once the policy is active (benchmarks measure there)."""
    out = Path(out)
    domain_id = random.Random(os.getpid() ^ time.time_ns()).randrange(1, 200)
    task_sim, task_policy = task_parameters(task, checkpoint)
    sim, policy = {**task_sim, **(sim or {})}, {**task_policy, **(policy or {})}  # the caller's win
    commands = sim_demo_commands(checkpoint, task, device, seed, record, sim, policy)
    results, videos = [], []
    started = time.monotonic()
    with ros_processes(commands, domain_id, out / "logs") as procs:
        rclpy.init(domain_id=domain_id)
        driver = Driver(sim.get("cameras", ["agentview"])[0])  # the video's camera
        try:

            def alive() -> bool:
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    raise RuntimeError(f"{dead} exited early; see {out / 'logs'}")
                return True

            driver.spin_until(
                lambda: alive() and driver.diagnostics.get("state") == "active", 120, "policy_node to become active"
            )
            if record:  # the recorder must be listening before the first episode starts
                driver.spin_until(
                    lambda: alive() and driver.count_subscribers("sim/episode") >= 2, 60, "recorder_node to subscribe"
                )
            if on_running is not None:
                on_running(driver)
            for index in range(episodes):
                driver.frames = []
                result = driver.run_episode(index, episode_timeout)
                alive()
                results.append(result)
                if driver.frames:
                    videos.append(str(write_video(out / f"episode_{index}.mp4", driver.frames)))
                print(
                    f"episode {index}  {'SUCCESS' if result['success'] else 'FAIL   '}  {result['seconds']:5.1f} s  "
                    f'"{result["instruction"]}"  (policy: {driver.diagnostics_message}, inference p50 '
                    f"{result['diagnostics'].get('inference_p50_ms', '?')} ms)",
                    flush=True,
                )
        finally:
            driver.destroy_node()
            rclpy.try_shutdown()
    summary = {
        "checkpoint": str(checkpoint),
        "task": task,
        "episodes": len(results),
        "successes": sum(r["success"] for r in results),
        "results": results,
        "videos": videos,
        "wall_s": round(time.monotonic() - started, 1),
        "record": record,
        "policy_node_overrides": dict(policy or {}),
        # policy_node's own measure over its last 1,000 ticks, read at each episode's end
        "boundary_jump_ratio_median": _median(r["diagnostics"].get("boundary_jump_ratio") for r in results),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    return summary


def _median(values) -> float | None:
    numbers = [float(v) for v in values if v not in (None, "")]
    return float(np.median(numbers)) if numbers else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="ros_demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--task", default="tabletop")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=1_000_000)
    p.add_argument("--device", default="auto")
    p.add_argument("--record", default=None, help="also record a rosbag2 MCAP directory here")
    p.add_argument("--out", default="runs/demo")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="a policy_node parameter (e.g. join:=rtc, extra_delay_ms:=300, policy_url:=ws://host:8000)",
    )
    args = p.parse_args(argv)
    policy = {}
    for setting in args.set:
        name, sep, value = setting.partition(":=")
        if not sep or not name:
            p.error(f"--set takes NAME:=VALUE, got {setting!r}")
        policy[name] = value
    summary = run_closed_loop(
        args.checkpoint, args.episodes, args.out, args.task, args.device, args.seed, args.record, policy=policy
    )
    print(
        f"{summary['successes']}/{summary['episodes']} successful through ROS 2 (sim_node + policy_node), "
        f"{summary['wall_s']} s; videos in {args.out}; report {Path(args.out) / 'report.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
