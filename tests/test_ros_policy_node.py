"""policy_node, started as the launch files start it, over real rclpy and Fast DDS."""

import time

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from ros_harness import ARM, GRIPPER, is_hold, policy_node
from std_msgs.msg import String
from std_srvs.srv import SetBool
from vla_ros import conversions as conv


def _state(robot) -> str:
    return robot.call(robot.get_state, GetState.Request()).current_state.label


def _transition(robot, transition_id: int) -> bool:
    return robot.call(robot.change_state, ChangeState.Request(transition=Transition(id=transition_id))).success


def _running(robot) -> None:
    """Instruction + inputs at 20 Hz until non-hold actions flow."""
    robot.instruction.publish(String(data="lift the cube"))
    robot.spin_until(
        lambda: any(not is_hold(a) for a in robot.actions_since(time.monotonic() - 0.3)),
        60,
        "actions from the model",
        publish_hz=20,
    )


def test_lifecycle_transitions_gate_the_control_loop(tiny_checkpoint, tmp_path):
    # A real-time priority the OS refuses (SCHED_FIFO stops at 99) leaves a warning and a loop at
    # normal priority, as on a machine without CAP_SYS_NICE.
    with policy_node(tiny_checkpoint, tmp_path, autostart=False, control_thread_priority=100) as (robot, proc):
        assert _state(robot) == "unconfigured"
        assert _transition(robot, Transition.TRANSITION_CONFIGURE) and _state(robot) == "inactive"
        robot.spin_for(0.5, publish_hz=20)
        assert not robot.actions  # configured but inactive: nothing is commanded
        assert _transition(robot, Transition.TRANSITION_ACTIVATE) and _state(robot) == "active"
        _running(robot)
        assert _transition(robot, Transition.TRANSITION_DEACTIVATE) and _state(robot) == "inactive"
        robot.spin_for(0.3)
        stopped = time.monotonic()
        robot.spin_for(0.5, publish_hz=20)
        assert not robot.actions_since(stopped)
        assert _transition(robot, Transition.TRANSITION_CLEANUP) and _state(robot) == "unconfigured"
        assert _transition(robot, Transition.TRANSITION_CONFIGURE) and _state(robot) == "inactive"  # reconfigurable
        assert proc.poll() is None
    assert "SCHED_FIFO priority 100 refused" in (tmp_path / "policy_node.log").read_text()


def test_bad_checkpoint_fails_configure_with_a_reason(tmp_path):
    with policy_node(tmp_path / "missing", tmp_path, autostart=False) as (robot, proc):
        assert not _transition(robot, Transition.TRANSITION_CONFIGURE)
        assert _state(robot) == "unconfigured" and proc.poll() is None
    assert "configure failed" in (tmp_path / "policy_node.log").read_text()


def test_runs_at_the_control_rate_and_reports(tiny_checkpoint, tmp_path):
    with policy_node(tiny_checkpoint, tmp_path) as (robot, _):
        _running(robot)
        start = time.monotonic()
        robot.spin_for(2.0, publish_hz=20)
        actions = robot.actions_since(start)
        arrivals = [t for t, _ in robot.actions if t >= start]
        # 50 Hz: a 20 ms median interval (30 Hz would be 33 ms, 100 Hz 10 ms), and not many ticks
        # lost over 2 s even on a loaded CI machine (30 Hz would give 60).
        assert 0.017 <= float(np.median(np.diff(arrivals))) <= 0.023
        assert 85 <= len(actions) <= 105
        assert all(a.shape == (7,) and np.all(np.abs(a) <= 1.0) for a in actions)
        # Chunks are replanned every replan_every steps, started early enough that the queue does
        # not run dry between chunks. A planner that started late would hold at each of the ~6 chunk
        # boundaries in 2 s; one chunk delayed by a loaded machine may cost a tick or two (seen once
        # in a full suite run), which is the benchmark's business, not this test's.
        assert sum(is_hold(a) for a in actions) <= 2
        # A new chunk within replan_every x dt = 0.2 s of the last (the tiny checkpoint's 4 steps):
        # planned one worst wake-to-chunk time early, from the next 20 Hz frame, so 0.15 s here.
        chunks = [t for t in robot.chunks if t >= start]
        assert 0.1 <= float(np.median(np.diff(chunks))) <= 0.2, np.diff(chunks)
        robot.spin_until(
            lambda: robot.last_diagnostics().get("message") == "running", 5, "a 'running' diagnostic", publish_hz=20
        )
        diag = robot.last_diagnostics()
        assert diag["state"] == "active" and diag["instruction"] == "lift the cube"
        assert float(diag["inference_p50_ms"]) > 0 and float(diag["rate_hz/camera/agentview"]) > 5
        assert diag["surprise"] != ""  # the world model's surprise is computed per chunk


def test_stale_camera_holds_within_a_tick(tiny_checkpoint, tmp_path):
    with policy_node(tiny_checkpoint, tmp_path, max_staleness_ms=200.0) as (robot, _):
        _running(robot)
        robot.spin_for(0.5, publish_hz=20)
        last_frame = time.monotonic()
        robot.spin_for(1.0, publish_hz=20, cameras=("wrist",))  # the agentview camera stops
        # stale from last_frame + 200 ms; one 20 ms tick later every action must hold (plus transport slack)
        late = [a for t, a in robot.actions if t > last_frame + 0.2 + 0.02 + 0.08]
        assert late and all(is_hold(a) for a in late)
        robot.spin_until(
            lambda: "stale inputs: camera/agentview" in robot.last_diagnostics()["message"],
            3,
            "the 1 Hz diagnostics to say why",
            publish_hz=20,
            cameras=("wrist",),
        )
        robot.spin_until(lambda: not is_hold(robot.actions[-1][1]), 10, "recovery", publish_hz=20)


@pytest.mark.parametrize("stream, stop", [("joint_states", {"joints": False}), ("eef_pose", {"pose": False})])
def test_stale_joint_states_or_eef_pose_hold_within_a_tick(tiny_checkpoint, tmp_path, stream, stop):
    """Proprio is an input like a camera: when the arm's state stops, the node holds and says which."""
    with policy_node(tiny_checkpoint, tmp_path, max_staleness_ms=200.0) as (robot, _):
        _running(robot)
        robot.spin_for(0.5, publish_hz=20)
        last = time.monotonic()
        robot.spin_for(1.0, publish_hz=20, **stop)
        late = [a for t, a in robot.actions if t > last + 0.2 + 0.02 + 0.08]
        assert late and all(is_hold(a) for a in late)
        robot.spin_until(
            lambda: f"stale inputs: {stream}" in robot.last_diagnostics()["message"],
            3,
            f"the diagnostics to name {stream}",
            publish_hz=20,
            **stop,
        )
        robot.spin_until(lambda: not is_hold(robot.actions[-1][1]), 10, "recovery", publish_hz=20)


def test_replan_period_ms_sets_the_time_between_chunks(tiny_checkpoint, tmp_path):
    """replan_period_ms replaces the checkpoint's replan_every x dt (0.2 s for the tiny one, 0.15 s
    between chunks in the rate test) with a time of its own; the queue still never runs dry."""
    with policy_node(tiny_checkpoint, tmp_path, replan_period_ms=100.0) as (robot, _):
        _running(robot)
        start = time.monotonic()
        robot.spin_for(2.0, publish_hz=20)
        chunks = [t for t in robot.chunks if t >= start]
        assert 0.04 <= float(np.median(np.diff(chunks))) <= 0.1, np.diff(chunks)  # a frame is 0.05 s
        assert sum(is_hold(a) for a in robot.actions_since(start)) <= 2


def test_no_instruction_holds(tiny_checkpoint, tmp_path):
    with policy_node(tiny_checkpoint, tmp_path) as (robot, _):
        robot.spin_until(lambda: len(robot.actions) > 20, 60, "actions", publish_hz=20)
        assert all(is_hold(a) for _, a in robot.actions)
        assert np.all(robot.actions[-1][1][-1] == -1.0)  # hold keeps the gripper open when nothing was held
        robot.spin_until(lambda: "no instruction" in robot.last_diagnostics().get("message", ""), 5, "diagnostic")


def _malformed(robot, k: int) -> None:
    stamp = robot.get_clock().now().to_msg()
    good = np.zeros((32, 32, 3), np.uint8)
    kind = k % 8
    if kind == 0:
        msg = conv.numpy_to_image(good, stamp)
        msg.encoding = "mono16"
        robot.images["agentview"].publish(msg)
    elif kind == 1:
        msg = conv.numpy_to_image(good, stamp)
        msg.data = msg.data[:-7]  # size mismatch
        robot.images["wrist"].publish(msg)
    elif kind == 2:
        msg = conv.numpy_to_image(good, stamp)
        msg.height, msg.width = 0, 0
        robot.images["agentview"].publish(msg)
    elif kind == 3:
        robot.joints.publish(conv.numpy_to_joint_state(["elbow", "shoulder"], [0.0, 1.0], None, stamp))  # unknown names
    elif kind == 4:
        robot.joints.publish(conv.numpy_to_joint_state(ARM + GRIPPER, [np.nan] * 9, None, stamp))
    elif kind == 5:
        msg = conv.numpy_to_joint_state(ARM + GRIPPER, np.zeros(9), None, stamp)
        msg.position = msg.position[:4]  # names/positions length mismatch
        robot.joints.publish(msg)
    elif kind == 6:
        robot.pose.publish(conv.numpy_to_pose([np.inf, 0, 0], [1, 0, 0, 0], stamp, "world"))
    else:
        robot.pose.publish(conv.numpy_to_pose([0, 0, 0], [3.0, 0, 0, 0], stamp, "world"))  # not a unit quaternion


def test_a_thousand_malformed_messages_are_rejected_and_the_node_holds(tiny_checkpoint, tmp_path):
    with policy_node(tiny_checkpoint, tmp_path) as (robot, proc):
        robot.instruction.publish(String(data="lift the cube"))
        robot.spin_until(lambda: robot.actions, 60, "the node to run")
        for k in range(1600):
            _malformed(robot, k)
            if k % 10 == 0:
                robot.spin_for(0.005)  # paced like sensors, so the best-effort queues rarely overflow

        def rejected() -> dict:
            return {k: int(v) for k, v in robot.last_diagnostics().items() if k.startswith("rejected/")}

        robot.spin_until(lambda: sum(rejected().values()) >= 1000, 10, "1000 rejections in the diagnostics")
        assert set(rejected()) == {
            "rejected/camera/agentview",
            "rejected/camera/wrist",
            "rejected/joint_states",
            "rejected/eef_pose",
        }
        assert proc.poll() is None
        assert robot.actions and all(is_hold(a) for a in robot.actions_since(time.monotonic() - 1.0))
        assert "stale inputs" in robot.last_diagnostics()["message"]
        _running(robot)  # still alive and still useful once good data arrives


def test_estop_holds_until_re_enabled(tiny_checkpoint, tmp_path):
    with policy_node(tiny_checkpoint, tmp_path) as (robot, _):
        _running(robot)
        reply = robot.call(robot.enable, SetBool.Request(data=False))
        assert reply.success
        stopped = time.monotonic()
        robot.spin_for(1.0, publish_hz=20)
        after = robot.actions_since(stopped + 0.1)
        assert after and all(is_hold(a) for a in after)
        robot.spin_until(
            lambda: "disabled by vla/enable" in robot.last_diagnostics()["message"],
            3,
            "the 1 Hz diagnostics to say why",
            publish_hz=20,
        )
        assert robot.call(robot.enable, SetBool.Request(data=True)).success
        _running(robot)


def test_a_failing_model_holds_and_says_why(tiny_checkpoint, tmp_path):
    # joint positions finite as float64 but beyond float32's range: every inference raises
    with policy_node(tiny_checkpoint, tmp_path) as (robot, proc):
        robot.joint_scale = 1e300
        robot.instruction.publish(String(data="lift the cube"))
        robot.spin_until(
            lambda: "model failed" in robot.last_diagnostics().get("message", ""),
            60,
            "a 'model failed' diagnostic",
            publish_hz=20,
        )
        assert "proprio" in robot.last_diagnostics()["message"]
        robot.spin_for(0.5, publish_hz=20)
        assert proc.poll() is None and all(is_hold(a) for a in robot.actions_since(time.monotonic() - 0.4))
