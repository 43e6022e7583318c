"""policy_node with its model on a `vla serve` server, and joins under added latency, over real
processes (rclpy + Fast DDS, websockets on loopback)."""

import time

import numpy as np
from ros_harness import is_hold, policy_node
from std_msgs.msg import String

from vla_policy.bench.serve_bench import free_port, start_server


def _moving(robot, since: float) -> bool:
    return any(not is_hold(a) for a in robot.actions_since(since))


def test_remote_policy_holds_when_the_server_dies_and_resumes_when_it_is_back(tiny_checkpoint, tmp_path):
    port = free_port()
    server = start_server(tiny_checkpoint, port, "--device", "cpu")
    url = f"ws://127.0.0.1:{port}"
    try:
        with policy_node("", tmp_path, policy_url=url, policy_timeout_ms=1000.0) as (robot, proc):
            robot.instruction.publish(String(data="lift the cube"))
            robot.spin_until(
                lambda: _moving(robot, time.monotonic() - 0.3), 60, "actions from the server", publish_hz=20
            )
            with open(f"/proc/{proc.pid}/maps") as maps:
                assert "libtorch" not in maps.read()  # the robot side runs without torch
            server.kill()
            server.wait()
            killed = time.monotonic()
            robot.spin_until(lambda: any(is_hold(a) for a in robot.actions_since(killed)), 5, "a hold", publish_hz=20)
            first_hold = next(t for t, a in robot.actions if t >= killed and is_hold(a))
            assert first_hold - killed < 0.2  # a tick (20 ms) plus DDS delivery, not a timeout
            robot.spin_for(0.5, publish_hz=20)
            assert all(is_hold(a) for a in robot.actions_since(first_hold))
            robot.spin_until(
                lambda: "policy server unreachable" in robot.last_diagnostics().get("message", ""),
                5,
                "the reason in diagnostics",
                publish_hz=20,
            )
            server = start_server(tiny_checkpoint, port, "--device", "cpu")
            back = time.monotonic()
            robot.spin_until(lambda: _moving(robot, back), 30, "moving again after the server returned", publish_hz=20)
            assert proc.poll() is None
    finally:
        server.kill()
        server.wait()


def test_rtc_join_under_added_latency_freezes_the_delayed_steps(tiny_checkpoint, tmp_path):
    # The tiny checkpoint's chunks are 4 steps (0.2 s): 60 ms added leaves room to play from each.
    with policy_node(tiny_checkpoint, tmp_path, join="rtc", extra_delay_ms=60.0, replan_period_ms=100.0) as (
        robot,
        proc,
    ):
        robot.instruction.publish(String(data="lift the cube"))
        robot.spin_until(lambda: _moving(robot, time.monotonic() - 0.3), 60, "actions", publish_hz=20)
        robot.spin_for(2.0, publish_hz=20)
        diagnostics = robot.last_diagnostics()
        assert diagnostics["join"] == "rtc"
        assert int(diagnostics["rtc_frozen_steps"]) >= 2  # 60 ms + inference, at dt 0.05 s
        assert float(diagnostics["inference_p50_ms"]) >= 60
        assert diagnostics["boundary_jump_ratio"] != ""
        assert np.isfinite(float(diagnostics["boundary_jump_ratio"])) and proc.poll() is None
