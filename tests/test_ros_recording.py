"""sim_node + recorder_node over real DDS: a teleoperated session -> rosbag2 MCAP -> HDF5."""

import random
import signal
import time

import numpy as np
import rclpy
from mcap.reader import make_reader
from rclpy.node import Node
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import Float64MultiArray, UInt32
from std_srvs.srv import Trigger
from vla_ros.closed_loop import CONFIG_DIR, node_command, ros_processes
from vla_ros.qos import LATCHED, RELIABLE

from vla_policy.data.from_bag import convert_bag
from vla_policy.data.hdf5_dataset import dataset_info, open_dataset, read_episode, validate_dataset

HORIZON = 20


class Teleop(Node):
    """An operator's device: random end-effector commands at 20 Hz, remembered."""

    def __init__(self):
        super().__init__("teleop")
        self.pub = self.create_publisher(Float64MultiArray, "vla/action", RELIABLE)
        self.sent: list[np.ndarray] = []
        self.episode = -1
        self.create_subscription(UInt32, "sim/episode", lambda m: setattr(self, "episode", m.data), LATCHED)
        self.reset = self.create_client(Trigger, "sim/reset")
        self.rng = np.random.default_rng(0)

    def drive_until(self, condition, timeout: float) -> None:
        deadline, next_send = time.monotonic() + timeout, time.monotonic()
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            if time.monotonic() >= next_send:
                action = np.r_[self.rng.uniform(-0.3, 0.3, 6), -1.0]
                self.pub.publish(Float64MultiArray(data=action.tolist()))
                self.sent.append(action)
                next_send += 0.05
            rclpy.spin_once(self, timeout_sec=0.005)


def test_teleop_session_records_to_mcap_survives_a_kill_and_converts_to_hdf5(tmp_path):
    bag, domain = tmp_path / "session", random.randrange(1, 200)
    commands = {
        "sim_node": node_command(
            "sim_node",
            CONFIG_DIR / "sim.yaml",
            {
                "task": "lift",
                "horizon": HORIZON,
                "auto_reset": True,
                "start_paused": True,
                "image_size": 32,
                "command_interface": "action",
            },
        ),  # the teleop sends normalised actions
        "recorder_node": node_command("recorder_node", CONFIG_DIR / "recorder.yaml", {"output": str(bag)}),
    }
    with ros_processes(commands, domain, tmp_path / "logs") as procs:
        rclpy.init(domain_id=domain)
        teleop = Teleop()
        try:
            recorded = [
                "/camera/agentview/image_raw",
                "/camera/wrist/image_raw",
                "/joint_states",
                "/eef_pose",
                "/sim/episode",
            ]
            teleop.drive_until(
                lambda: all(teleop.count_subscribers(t) for t in recorded) and teleop.reset.service_is_ready(), 120
            )
            teleop.drive_until(lambda: teleop.count_subscribers("/vla/action") >= 2, 30)  # sim + recorder
            future = teleop.reset.call_async(Trigger.Request())
            teleop.drive_until(future.done, 30)
            teleop.drive_until(lambda: teleop.episode == 3, 60)
            time.sleep(0.3)  # mid-episode 3
            procs["recorder_node"].send_signal(signal.SIGKILL)
            procs["recorder_node"].wait()
        finally:
            teleop.destroy_node()
            rclpy.try_shutdown()

    # standard tools read it: episodes 0-2 complete, the killed episode 3 absent
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/camera/agentview/image_raw"] == "sensor_msgs/msg/Image"
        assert types["/vla/action"] == "std_msgs/msg/Float64MultiArray"
        episodes = [
            reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages() if c.topic == "/sim/episode"
        ]
        assert episodes == [0, 1, 2]
        assert sum(1 for _ in reader.messages()) == sum(c.msgcount for c in reader.connections)

    # Each message is kept with when it was sent and when the middleware received it (as rosbag2
    # does), not when the recorder's executor got to it: a frame is sent after its stamp is taken.
    typestore = get_typestore(Stores.ROS2_KILTED)
    with open(sorted(bag.glob("*.mcap"))[1], "rb") as stream:
        frames = [
            (typestore.deserialize_cdr(message.data, "sensor_msgs/msg/Image").header.stamp, message)
            for _, channel, message in make_reader(stream).iter_messages()
            if channel.topic == "/camera/agentview/image_raw"
        ]
    assert len(frames) >= HORIZON
    for stamp, message in frames:
        assert stamp.sec * 10**9 + stamp.nanosec <= message.publish_time < message.log_time

    out = tmp_path / "session.hdf5"
    summary = convert_bag(bag, out, task="lift")
    assert summary["demos"] == 3 and validate_dataset(out) == []
    info = dataset_info(out)
    assert (
        info["obs"]["agentview_image"]["shape"] == [32, 32, 3] and info["env_args"]["env_kwargs"]["control_freq"] == 20
    )
    sent = {tuple(a) for a in teleop.sent}
    with open_dataset(out) as f:
        for name in ("demo_0", "demo_1", "demo_2"):
            episode = read_episode(f["data"][name])
            assert HORIZON - 2 <= len(episode) <= HORIZON
            assert episode.instruction == "lift the cube"
            assert all(tuple(a) in sent for a in episode.actions)  # exactly what the operator commanded
            assert episode.obs["joint_pos"].shape == (len(episode), 7) and np.isfinite(episode.obs["eef_quat"]).all()
