"""vla_ros building blocks without DDS: message conversions, input pairing, action safety."""

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from vla_ros import conversions as conv
from vla_ros.bench import cpu_list
from vla_ros.inputs import InputBuffer
from vla_ros.rate_loop import run_at_rate
from vla_ros.safety import ActionLimiter, per_dimension

from vla_policy.data.images import preprocess_images
from vla_policy.types import ActionChunk

STAMP = Time(sec=12, nanosec=500_000_000)


def test_images_round_trip_and_bgr_and_row_padding_are_honoured():
    pixels = np.random.default_rng(0).integers(0, 255, (5, 7, 3), np.uint8)
    msg = conv.numpy_to_image(pixels, STAMP, "cam")
    assert msg.encoding == "rgb8" and np.array_equal(conv.image_to_numpy(msg), pixels)
    bgr = conv.numpy_to_image(pixels[..., ::-1].copy(), STAMP)
    bgr.encoding = "bgr8"
    assert np.array_equal(conv.image_to_numpy(bgr), pixels)
    padded = conv.numpy_to_image(pixels, STAMP)
    rows = np.frombuffer(bytes(padded.data), np.uint8).reshape(5, 21)
    padded.step, padded.data = 24, np.pad(rows, ((0, 0), (0, 3))).tobytes()
    out = conv.image_to_numpy(padded)
    assert np.array_equal(out, pixels) and out.flags.writeable


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: setattr(m, "encoding", "mono8"), "encoding"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "bytes"),
        (lambda m: setattr(m, "step", 3), "step"),
        (lambda m: setattr(m, "height", 0), "empty"),
    ],
)
def test_bad_images_are_invalid_messages(change, message):
    msg = conv.numpy_to_image(np.zeros((4, 4, 3), np.uint8), STAMP)
    change(msg)
    with pytest.raises(conv.InvalidMessage, match=message):
        conv.image_to_numpy(msg)


def test_joints_are_matched_by_name_and_extra_joints_ignored():
    msg = conv.numpy_to_joint_state(["b", "extra", "a"], [2.0, 9.0, 1.0], None, STAMP)
    assert conv.joint_state_to_numpy(msg, ["a", "b"]).tolist() == [1.0, 2.0]
    with pytest.raises(conv.InvalidMessage, match="lacks joint"):
        conv.joint_state_to_numpy(msg, ["a", "c"])
    with pytest.raises(conv.InvalidMessage, match="NaN"):
        conv.joint_state_to_numpy(conv.numpy_to_joint_state(["a"], [np.nan], None, STAMP), ["a"])
    with pytest.raises(conv.InvalidMessage, match="repeats"):
        conv.joint_state_to_numpy(conv.numpy_to_joint_state(["a", "a"], [1.0, 1.0], None, STAMP), ["a"])


def test_pose_stamp_and_chunk_conversions():
    pos, quat = conv.pose_to_numpy(conv.numpy_to_pose([1, 2, 3], [0, 0, 0, 2.0 / 2.05], STAMP, "w"))
    assert pos.tolist() == [1, 2, 3] and np.isclose(np.linalg.norm(quat), 1.0)
    assert conv.stamp_to_seconds(conv.seconds_to_stamp(12.5)) == 12.5
    trajectory = conv.chunk_to_trajectory(ActionChunk(np.zeros((4, 7)), 0.05), STAMP)
    assert len(trajectory.points) == 4 and trajectory.joint_names[-1] == "gripper"
    assert trajectory.points[3].time_from_start.nanosec == 150_000_000
    with pytest.raises(conv.InvalidMessage, match="expected 7"):
        conv.msg_to_action(conv.action_to_msg(np.zeros(6)), 7)


def test_inputs_pair_by_stamp_within_tolerance():
    buffer = InputBuffer(["camera/a", "joint_states"], tolerance=0.03)
    assert buffer.latest() is None
    buffer.put("joint_states", 1.00, {"joint_pos": 1}, now=1.0)
    buffer.put("joint_states", 1.05, {"joint_pos": 2}, now=1.05)
    buffer.put("camera/a", 1.04, {"a_image": "frame"}, now=1.06)
    obs = buffer.latest()
    assert obs.stamp == 1.04 and obs.obs == {"a_image": "frame", "joint_pos": 2}  # nearest, not newest
    buffer.put("camera/a", 1.20, {"a_image": "next"}, now=1.2)  # its joint state is still on the way
    assert buffer.latest().stamp == 1.04  # the newest *complete* observation
    assert buffer.wait_for_observation(received_after=1.06, timeout=0.01) is None
    buffer.put("joint_states", 1.20, {"joint_pos": 3}, now=1.21)
    obs = buffer.wait_for_observation(received_after=1.06, timeout=0.01)
    assert obs.stamp == 1.20 and obs.received == 1.2 and obs.obs == {"a_image": "next", "joint_pos": 3}
    assert buffer.staleness(now=1.3)["joint_states"] == pytest.approx(0.09)  # since it *arrived*
    assert buffer.wait_for_observation(received_after=1.2, timeout=0.01) is None  # arrived before
    buffer.put("camera/a", 1.10, {"a_image": "late"}, now=1.25)  # a sender clock a little behind
    buffer.put("joint_states", 1.10, {"joint_pos": 4}, now=1.25)
    assert buffer.wait_for_observation(received_after=1.2, timeout=0.01).obs["a_image"] == "late"


def test_inputs_refuse_stamps_from_the_future_or_already_stale():
    buffer = InputBuffer(["camera/a"], tolerance=0.03, max_future=0.05, max_age=0.2)
    assert buffer.put("camera/a", 10.04, {"a_image": 1}, now=10.0) is None  # within the tolerance
    assert "in the future" in buffer.put("camera/a", 15.0, {"a_image": 2}, now=10.0)
    assert "old on arrival" in buffer.put("camera/a", 5.0, {"a_image": 3}, now=10.0)
    assert buffer.latest().obs == {"a_image": 1}  # refused samples are not kept
    assert buffer.staleness(now=10.5)["camera/a"] == pytest.approx(0.5)  # refused ones do not refresh it
    assert buffer.rates(now=10.5)["camera/a"] is None  # one arrival: no rate yet
    for k in range(5):
        buffer.put("camera/a", 10.6 + 0.1 * k, {"a_image": k}, now=10.6 + 0.1 * k)
    assert buffer.rates(now=12.5)["camera/a"] == pytest.approx(10.0)  # the 10.0 arrival is out of the window


def test_limiter_clips_rate_limits_and_holds_the_gripper():
    limiter = ActionLimiter(low=[-0.5] * 6 + [-1.0], high=[0.5] * 6 + [1.0], max_rate=10.0)
    assert ActionLimiter(limiter.low, limiter.high, 10.0).hold()[-1] == -1.0  # nothing commanded yet: open
    first = limiter.limit(np.r_[np.full(6, 0.9), 1.0], dt=0.02)
    assert np.allclose(first[:6], 0.5) and first[6] == 1.0
    second = limiter.limit(np.r_[np.full(6, -0.9), -1.0], dt=0.02)
    assert np.allclose(second[:6], 0.3) and second[6] == -1.0  # 10/s * 20 ms = 0.2 per tick; gripper exempt
    limiter.last[-1] = 1.0
    assert limiter.hold().tolist() == [0, 0, 0, 0, 0, 0, 1.0]  # a held object stays held
    with pytest.raises(ValueError, match="low <= high"):
        ActionLimiter(low=[1.0], high=[0.0], max_rate=1.0)
    assert per_dimension([-1.0], 4, "action_low").tolist() == [-1.0] * 4  # one value: every dimension
    assert per_dimension([0.1, 0.2, 0.3, 1.0], 4, "action_high").tolist() == [0.1, 0.2, 0.3, 1.0]
    with pytest.raises(ValueError, match="action_low has 7 values; this checkpoint's actions have 4"):
        per_dimension([-1.0] * 7, 4, "action_low")


class _SimulatedClock:
    """Stands in for the `time` module inside rate_loop: time moves only when slept or spent."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_loop_ticks_on_deadlines_and_does_not_burst_after_an_overrun(monkeypatch):
    clock = _SimulatedClock()  # exact: an OS stall of a loaded CI machine cannot move these ticks
    monkeypatch.setattr("vla_ros.rate_loop.time", clock)
    ticks: list[float] = []

    def tick():
        ticks.append(clock.now)
        if len(ticks) == 5:
            clock.now += 0.05  # an overrun of 2.5 periods
        if len(ticks) == 10:
            clock.now += 0.03  # an overrun of 1.5 periods, late by less than a period at the next deadline

    run_at_rate(0.02, tick, lambda: len(ticks) < 15)
    intervals = np.round(np.diff(ticks), 6).tolist()
    # on deadlines; the long overrun restarts the schedule (no missed ticks made up); the short one
    # runs the tick that was due at once and is back on the original deadlines after it
    assert intervals == [0.02] * 4 + [0.05] + [0.02] * 4 + [0.03, 0.01] + [0.02] * 3


def test_rate_loop_keeps_its_period_on_the_real_clock():
    ticks: list[float] = []
    run_at_rate(0.02, lambda: ticks.append(time.monotonic()), lambda: len(ticks) < 15)
    assert abs(np.median(np.diff(ticks)) - 0.02) < 0.003  # the median: one OS stall cannot move it


def test_cpu_list_reads_taskset_syntax():
    assert cpu_list("0") == {0} and cpu_list("0,2-3") == {0, 2, 3}


def test_twist_round_trip_gives_back_the_normalised_action():
    from vla_policy.action_space import panda_osc

    space = panda_osc(0.05)
    rng = np.random.default_rng(0)
    for _ in range(100):
        action = rng.uniform(-1, 1, 7)
        twist, gripper = conv.action_to_twist(action, space, STAMP)
        back = conv.twist_to_action(twist, conv.msg_to_gripper(gripper), space, step_dt=0.05)
        assert np.allclose(back, action, atol=1e-6)
    # A robot stepping at 10 Hz takes twice the per-step delta for the same velocity (the gripper is a position).
    twist, gripper = conv.action_to_twist(np.r_[0.2, 0, 0, 0, 0, 0.1, 1.0], space, STAMP)
    assert twist.twist.linear.x == pytest.approx(0.2 * 0.05 / 0.05) and twist.twist.angular.z == pytest.approx(
        0.1 * 0.5 / 0.05
    )
    assert np.allclose(
        conv.twist_to_action(twist, conv.msg_to_gripper(gripper), space, 0.1), [0.4, 0, 0, 0, 0, 0.2, 1.0]
    )
    twist.header.frame_id = "camera"
    with pytest.raises(conv.InvalidMessage, match="frame"):
        conv.twist_to_action(twist, 0.0, space, 0.05)


def test_compressed_images_and_size_limits():
    pixels = np.random.default_rng(1).integers(0, 255, (48, 64, 3), np.uint8)
    png = conv.compressed_image_to_numpy(conv.numpy_to_compressed_image(pixels, STAMP, "png"))
    assert np.array_equal(png, pixels)  # lossless, and RGB (not OpenCV's BGR)
    jpeg = conv.compressed_image_to_numpy(
        conv.numpy_to_compressed_image(np.full((48, 64, 3), (200, 30, 30), np.uint8), STAMP)
    )
    assert np.abs(jpeg.astype(int) - (200, 30, 30)).max() < 6
    with pytest.raises(conv.InvalidMessage, match="pixels"):
        conv.compressed_image_to_numpy(conv.numpy_to_compressed_image(pixels, STAMP, "png"), max_pixels=1000)
    with pytest.raises(conv.InvalidMessage, match="not a readable"):
        conv.compressed_image_to_numpy(CompressedImage(format="jpeg", data=b"\xff\xd8garbage"))
    with pytest.raises(conv.InvalidMessage, match="pixels"):  # refused on the header, before the data is read
        conv.image_to_numpy(Image(height=2160, width=3840, encoding="rgb8", step=3840 * 3), max_pixels=1920 * 1200)
    assert conv.fit_image(np.zeros((480, 640, 3), np.uint8), 64).shape == (64, 64, 3)
    assert conv.fit_image(pixels, 64) is pixels  # no larger than the model's input: kept as it is
    small = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    assert (
        np.abs(
            conv.fit_image(small, 64).astype(int) - (preprocess_images(small, 64).permute(1, 2, 0).numpy() * 255)
        ).max()
        <= 1
    )  # the training resize


def test_instructions_are_bounded_text():
    assert conv.instruction_text("  lift   the\tred cube ", 100) == "lift the red cube"
    for bad, why in [
        ("x" * 101, "characters"),
        ("lift\x1b[2J", "control"),
        ("pick \ufffd", "UTF-8"),
        (b"lift", "not text"),
    ]:
        with pytest.raises(conv.InvalidMessage, match=why):
            conv.instruction_text(bad, 100)
    assert len(conv.brief("y" * 10_000)) < 150


def test_joint_space_chunks_become_the_trajectory_ahead():
    chunk = ActionChunk(np.arange(4 * 8, dtype=float).reshape(4, 8), 0.05, action_space="joint_position")
    names = [f"j{i}" for i in range(7)]
    trajectory = conv.joint_targets_to_trajectory(chunk, names, STAMP, from_time=0.06)  # point 1 is under way
    assert trajectory.joint_names == names and len(trajectory.points) == 2  # points 2 and 3 are ahead
    assert list(trajectory.points[0].positions) == chunk.actions[2, :7].tolist()
    assert [p.time_from_start.nanosec for p in trajectory.points] == [50_000_000, 100_000_000]
    with pytest.raises(ValueError, match="joint_position"):
        conv.joint_targets_to_trajectory(ActionChunk(np.zeros((4, 7)), 0.05), names, STAMP, 0.0)
