"""BagWriter + from-bag without DDS: a synthetic recording with known timing converts exactly.

Messages are CDR-serialised with rosbags (rclpy's serialize_message returns its buffer with
trailing bytes that strict readers reject; the recorder stores the exact bytes from the wire)."""

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from vla_ros.bag_writer import BagWriter

from vla_policy.data.from_bag import SIM_ARM, SIM_GRIPPER, convert_bag
from vla_policy.data.hdf5_dataset import DatasetError, open_dataset, read_episode
from vla_policy.data.lerobot import export_lerobot, import_lerobot

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types


def _cdr(type_name: str, **fields) -> bytes:
    return bytes(TS.serialize_cdr(T[type_name](**fields), type_name))


def _header(t: float):
    sec = int(t)
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id=""
    )


def _ns(t: float) -> int:
    return int(t * 1e9)


def _image(t: float, value: int) -> bytes:
    """An 8x8 frame stamped t, every pixel `value`."""
    return _cdr(
        "sensor_msgs/msg/Image",
        header=_header(t),
        height=8,
        width=8,
        encoding="rgb8",
        is_bigendian=0,
        step=24,
        data=np.full(8 * 8 * 3, value, np.uint8),
    )


def _action(values: np.ndarray) -> bytes:
    layout = T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
    return _cdr("std_msgs/msg/Float64MultiArray", layout=layout, data=values)


TYPES = {
    "/camera/agentview/image_raw": "sensor_msgs/msg/Image",
    "/joint_states": "sensor_msgs/msg/JointState",
    "/eef_pose": "geometry_msgs/msg/PoseStamped",
    "/vla/instruction": "std_msgs/msg/String",
    "/vla/action": "std_msgs/msg/Float64MultiArray",
    "/vla/success": "std_msgs/msg/Bool",
    "/sim/episode": "std_msgs/msg/UInt32",
}


def _write_episode(
    bag: BagWriter, index: int, t0: float, steps: int, succeed: bool, after_marker: tuple = ()
) -> list[np.ndarray]:
    """Like sim_node at 20 Hz: a frame per step, the action sent 10 ms after each frame.
    `after_marker`: (topic, receive time, serialized message)s filed just after the marker."""
    bag.split()
    bag.write("/sim/episode", _cdr("std_msgs/msg/UInt32", data=index), _ns(t0))
    for topic, received, data in after_marker:
        bag.write(topic, data, _ns(received))
    bag.write("/vla/instruction", _cdr("std_msgs/msg/String", data=f"task {index}"), _ns(t0))
    actions = []
    for k in range(steps + 1):
        t = t0 + 0.001 + 0.05 * k
        bag.write("/camera/agentview/image_raw", _image(t, k), _ns(t))
        bag.write(
            "/joint_states",
            _cdr(
                "sensor_msgs/msg/JointState",
                header=_header(t),
                name=list(SIM_ARM + SIM_GRIPPER),
                position=np.full(9, float(k)),
                velocity=np.zeros(0),
                effort=np.zeros(0),
            ),
            _ns(t + 0.001),
        )
        pose = T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=float(k), y=0.0, z=0.0),
            orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        )
        bag.write("/eef_pose", _cdr("geometry_msgs/msg/PoseStamped", header=_header(t), pose=pose), _ns(t + 0.001))
        if k == steps:
            bag.write("/vla/success", _cdr("std_msgs/msg/Bool", data=succeed), _ns(t + 0.002))
            break
        action = np.r_[np.full(6, k / 100), -1.0]
        bag.write("/vla/action", _action(action), _ns(t + 0.01))
        actions.append(action)
    return actions


def test_synthetic_recording_converts_step_by_step(tmp_path):
    bag = BagWriter(tmp_path / "bag")
    for topic, msg_type in TYPES.items():
        bag.add_topic(topic, msg_type)
    sent = [
        _write_episode(bag, i, 100.0 + 10 * i, steps, succeed) for i, steps, succeed in ((0, 5, True), (1, 7, False))
    ]
    bag.close()
    with AnyReader([tmp_path / "bag"], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        assert sum(1 for _ in reader.messages()) == sum(c.msgcount for c in reader.connections) > 0

    summary = convert_bag(tmp_path / "bag", tmp_path / "out.hdf5", task="synthetic", topics=_topics())
    assert summary["demos"] == 2 and summary["successes"] == 1 and summary["control_freq"] == 20
    with open_dataset(tmp_path / "out.hdf5") as f:
        for i, actions in enumerate(sent):
            episode = read_episode(f["data"][f"demo_{i}"])
            assert episode.instruction == f"task {i}" and len(episode) == len(actions)
            assert np.array_equal(episode.actions, np.stack(actions))  # action k follows frame k
            assert episode.obs["agentview_image"][:, 0, 0, 0].tolist() == list(range(len(actions)))
            assert episode.obs["joint_pos"][:, 0].tolist() == list(range(len(actions)))
    # A recording exports to LeRobot's format like a collected dataset, and comes back the same.
    export_lerobot(tmp_path / "out.hdf5", tmp_path / "lerobot")
    import_lerobot(tmp_path / "lerobot", tmp_path / "back.hdf5")
    with open_dataset(tmp_path / "out.hdf5") as a, open_dataset(tmp_path / "back.hdf5") as b:
        for name in ("demo_0", "demo_1"):
            x, y = read_episode(a["data"][name]), read_episode(b["data"][name])
            assert x.instruction == y.instruction and np.array_equal(x.actions, y.actions)
            assert np.array_equal(x.obs["joint_pos"], y.obs["joint_pos"]) and x.states.shape == y.states.shape
    # An existing dataset is not replaced silently (as `vla collect`): only with overwrite.
    with pytest.raises(DatasetError, match="--overwrite"):
        convert_bag(tmp_path / "bag", tmp_path / "out.hdf5", task="synthetic", topics=_topics())
    assert (
        convert_bag(tmp_path / "bag", tmp_path / "out.hdf5", task="synthetic", topics=_topics(), overwrite=True)[
            "demos"
        ]
        == 2
    )


def _topics():
    from vla_policy.data.from_bag import BagTopics

    return BagTopics(cameras=("agentview",))


def test_bad_bags_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a rosbag2 directory"):
        convert_bag(tmp_path, tmp_path / "out.hdf5")
    bag = BagWriter(tmp_path / "empty")
    bag.add_topic("/vla/instruction", "std_msgs/msg/String")
    bag.write("/vla/instruction", _cdr("std_msgs/msg/String", data="x"), 1)
    bag.close()
    with pytest.raises(DatasetError, match="no file holds"):
        convert_bag(tmp_path / "empty", tmp_path / "out.hdf5")
    with pytest.raises(FileExistsError):
        BagWriter(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown message type"):
        BagWriter(tmp_path / "other").add_topic("/x", "nope_msgs/msg/Nothing")


def test_each_episode_gets_the_instruction_received_with_its_marker():
    from vla_policy.data.from_bag import _instruction

    # A 2 s episode starting at t=10: its instruction arrived a moment before the split (carried over
    # from the file before), and the next episode's arrived before the next split (in this file).
    assert (
        _instruction([(9.999, "pick up the red cube")], [(12.0, "put the green cube on the blue cube")], [10.0])
        == "pick up the red cube"
    )
    # ... or a moment after the split, in the episode's own file.
    assert _instruction([(5.0, "old")], [(10.002, "new"), (12.0, "next")], [10.0]) == "new"
    # Without episode markers (an operator's recording): the first the file holds, else the carried one.
    assert _instruction([(5.0, "old")], [(7.0, "new")], []) == "new"
    assert _instruction([(5.0, "old")], [], []) == "old"
    assert _instruction([], [], [10.0]) is None


def test_frames_sent_before_the_marker_or_after_the_end_are_not_steps(tmp_path):
    """A robot publishes frames while it waits, and the policy keeps sending actions. One sent just
    before the reset may be filed after the marker's split (the recorder files in the order its
    executor takes messages, logs by reception); frames after the end show no step either."""
    bag = BagWriter(tmp_path / "bag")
    for topic, msg_type in (*TYPES.items(), ("/sim/episode_end", "std_msgs/msg/Bool")):
        bag.add_topic(topic, msg_type)
    stale = _action(np.r_[np.full(6, 0.5), 1.0])
    bag.write("/camera/agentview/image_raw", _image(99.9, 200), _ns(99.9))  # waiting, before the first episode
    bag.write("/vla/action", stale, _ns(99.95))
    # The frame sent 20 ms before the marker (the reset in between) is filed after the split, and
    # an action on it arrives before the episode's first frame.
    after_marker = (("/camera/agentview/image_raw", 99.98, _image(99.98, 200)), ("/vla/action", 100.0005, stale))
    sent = _write_episode(bag, 0, 100.0, 6, succeed=False, after_marker=after_marker)
    end = 100.0 + 0.001 + 0.05 * 6  # the last frame's; the horizon, as sim_node tells it
    bag.write("/sim/episode_end", _cdr("std_msgs/msg/Bool", data=False), _ns(end + 0.003))
    bag.write("/vla/action", stale, _ns(end + 0.02))
    bag.write("/camera/agentview/image_raw", _image(end + 0.05, 201), _ns(end + 0.05))  # idle after the end
    bag.close()

    convert_bag(tmp_path / "bag", tmp_path / "out.hdf5", task="synthetic", topics=_topics())
    with open_dataset(tmp_path / "out.hdf5") as f:
        assert len(f["data"]) == 1
        episode = read_episode(f["data"]["demo_0"])
    assert len(episode) == len(sent) == 6
    assert np.array_equal(episode.actions, np.stack(sent))
    assert episode.obs["agentview_image"][:, 0, 0, 0].tolist() == list(range(6))
