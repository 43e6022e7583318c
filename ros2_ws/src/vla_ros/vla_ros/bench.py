"""`vla bench ros`: the policy node's control loop, measured with inference idle and running.

sim_node runs as its own process (as the launch file starts it) publishing two 128 px cameras
at 20 Hz. policy_node runs in this process, built from config/policy.yaml and spun by the same
SingleThreadedExecutor as its `main`, so its own tick times and latencies can be read exactly.
Phase 1 (idle): no instruction, the loop holds and the model is never called. Phase 2 (running):
an instruction arrives and the model predicts a chunk every `replan_period` in its thread. For each phase:
the control rate, |tick interval - period| p50/p99 (jitter), and in phase 2 inference time and
camera-stamp-to-first-action latency p50/p95, and in phase 2 the smoothness of the actions
published (boundary-jump ratio, commanded jerk; `--set join:=rtc`, `--set extra_delay_ms:=300`
to compare joins under latency). JSON on stdout (and --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from vla_ros.closed_loop import CONFIG_DIR, SHIPPED_CHECKPOINT, node_command, ros_processes
from vla_ros.policy_node import SUCCESS, PolicyNode
from vla_ros.policy_status import played_smoothness
from vla_ros.timing import loop_stats, percentile_ms

WARMUP_S = 10.0


def bench_ros(
    checkpoint: str | Path,
    seconds: float,
    device: str = "auto",
    log_dir: Path = Path("runs/bench_ros"),
    overrides: list[str] = (),
    sim_cpus: str = "",
    policy_cpus: str = "",
) -> dict:
    """`overrides`: extra policy_node parameters as name:=value (e.g. replan_period_ms:=100.0).
    `sim_cpus` / `policy_cpus`: CPU lists ("0", "1-3") to pin sim_node and this process to, as a
    robot's drivers would run beside the policy computer rather than on its cores; "": unpinned."""
    domain = random.Random(os.getpid()).randrange(1, 200)
    sim = node_command("sim_node", CONFIG_DIR / "sim.yaml", {"auto_reset": True, "publish_instruction": False})
    if sim_cpus:
        sim = ["taskset", "--cpu-list", sim_cpus, *sim]
    if policy_cpus:
        os.sched_setaffinity(0, cpu_list(policy_cpus))  # before the node's threads exist: they inherit it
    with ros_processes({"sim_node": sim}, domain, log_dir):
        rclpy.init(
            domain_id=domain,
            args=[
                "--ros-args",
                "--params-file",
                str(CONFIG_DIR / "policy.yaml"),
                "-p",
                f"checkpoint:={checkpoint}",
                "-p",
                f"device:={device}",
                *[arg for o in overrides for arg in ("-p", o)],
            ],
        )
        node = PolicyNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        try:
            assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS, (
                "policy_node did not start"
            )
            spinner.start()
            period = 1.0 / node.param("control_rate_hz")
            deadline = time.monotonic() + 120
            while node.inputs.latest() is None:  # wait for the sim's first paired observation
                assert time.monotonic() < deadline, f"no observation from sim_node; see {log_dir}/sim_node.log"
                time.sleep(0.1)
            time.sleep(WARMUP_S)  # the simulator's first steps (numba compiles, renderer warms up)
            start = time.monotonic()
            time.sleep(seconds)
            idle = loop_stats([t for t in node.tick_times if t >= start], period)
            publisher = node.create_publisher(String, "vla/instruction", 10)
            node.inference_s.clear()
            node.stamp_to_action_s.clear()
            node.played = type(node.played)(maxlen=int(seconds * 2 / period) + 100)  # the whole phase
            while not node.inference_s:  # the instruction reaches the node through DDS
                publisher.publish(String(data="pick up the red cube"))
                time.sleep(0.2)
            start = time.monotonic()
            time.sleep(seconds)
            running = loop_stats([t for t in node.tick_times if t >= start], period)
            running.update(
                inference_p50_ms=round(percentile_ms(node.inference_s, 50), 2),
                inference_p95_ms=round(percentile_ms(node.inference_s, 95), 2),
                chunks=len(node.inference_s),
                camera_stamp_to_action_p50_ms=round(percentile_ms(node.stamp_to_action_s, 50), 2),
                camera_stamp_to_action_p95_ms=round(percentile_ms(node.stamp_to_action_s, 95), 2),
                camera_rate_hz=round(node.inputs.rates(node._now())["camera/agentview"], 1),
                hold_reason_at_end=node.hold_reason,
                smoothness=played_smoothness(node),
            )
        finally:
            node._stop_control()
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    return {
        "benchmark": "ros",
        "checkpoint": str(checkpoint),
        "device": device,
        "seconds_per_phase": seconds,
        "policy_node_overrides": list(overrides),
        "sim_cpus": sim_cpus or "all",
        "policy_cpus": policy_cpus or "all",
        "control_rate_hz_target": 1.0 / period,
        "idle": idle,
        "running": running,
        "jitter_p99_ratio_running_to_idle": round(running["jitter_p99_ms"] / max(idle["jitter_p99_ms"], 1e-9), 2),
        "goals": {
            "rate_hz": ">= 50",
            "jitter_p99_ms": "< 2",
            "ratio": "<= 1.5",
            "camera_stamp_to_action_p95_ms": "< 40",
        },
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }


def cpu_list(text: str) -> set[int]:
    """ "0,2-3" -> {0, 2, 3} (taskset's --cpu-list syntax)."""
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="vla bench ros", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--seconds", type=float, default=30.0, help="per phase")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE", help="a policy_node parameter")
    p.add_argument("--sim-cpus", default="", help='pin sim_node to these CPUs (e.g. "0"); default: unpinned')
    p.add_argument("--policy-cpus", default="", help='pin policy_node to these CPUs (e.g. "1"); default: unpinned')
    args = p.parse_args(argv)
    result = bench_ros(
        args.checkpoint,
        args.seconds,
        args.device,
        overrides=args.set,
        sim_cpus=args.sim_cpus,
        policy_cpus=args.policy_cpus,
    )
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
