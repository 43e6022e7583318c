"""recorder_node: chosen topics -> a rosbag2 MCAP directory, one file per episode.

Like `ros2 bag record`: topics are subscribed as they appear (their type and QoS taken from the
publishers), messages are stored exactly as serialised on the wire, and a message on
`split_topic` (sim_node's `sim/episode`, or a teleoperation tool's) starts a new file. Turn a
recording into training data with `vla dataset from-bag BAG --out F.hdf5`.
"""

from __future__ import annotations

import importlib
import signal

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo

from vla_ros.bag_writer import BagWriter

PARAMETERS = {
    "output": "runs/bags/session",
    "topics": ["vla/action"],
    "split_topic": "",
    "discovery_period_s": 0.5,
}


def message_class(msg_type: str):
    """'sensor_msgs/msg/Image' -> the generated Python class."""
    package, kind, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _qos_for(publishers) -> tuple[QoSProfile, str]:
    """A subscription QoS compatible with every publisher, and the offered profiles as rosbag2 YAML."""
    best_effort = any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers)
    latched = publishers and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    qos = QoSProfile(
        depth=100,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )
    offered = "".join(
        f"- history: 3\n  depth: 0\n  reliability: {int(p.qos_profile.reliability)}\n"
        f"  durability: {int(p.qos_profile.durability)}\n  deadline:\n    sec: 2147483647\n    nsec: 4294967295\n"
        f"  lifespan:\n    sec: 2147483647\n    nsec: 4294967295\n  liveliness: 1\n"
        f"  liveliness_lease_duration:\n    sec: 2147483647\n    nsec: 4294967295\n  avoid_ros_namespace_conventions: false\n"
        for p in publishers
    )
    return qos, offered


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("recorder_node", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        self.output = self.get_parameter("output").value
        self.wanted = [self.resolve_topic_name(t) for t in self.get_parameter("topics").value]
        split = self.get_parameter("split_topic").value
        self.split_topic = self.resolve_topic_name(split) if split else None
        if self.split_topic and self.split_topic not in self.wanted:
            self.wanted.append(self.split_topic)
        self.bag = BagWriter(self.output)
        self.subscribed: dict[str, object] = {}
        self.create_timer(self.get_parameter("discovery_period_s").value, self._discover)
        self.get_logger().info(f"recording {self.wanted} to {self.output}")

    def _discover(self) -> None:
        types = dict(self.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.subscribed or topic not in types:
                continue
            publishers = self.get_publishers_info_by_topic(topic)
            if not publishers:  # known only from a subscriber: wait, its publisher's QoS decides ours
                continue
            msg_type = types[topic][0]
            qos, offered = _qos_for(publishers)
            self.bag.add_topic(topic, msg_type, offered)
            self.subscribed[topic] = self.create_subscription(
                message_class(msg_type),
                topic,
                lambda data, info, topic=topic: self._on_message(topic, data, info),
                qos,
                raw=True,
            )
            self.get_logger().info(f"subscribed {topic} [{msg_type}]")

    def _on_message(self, topic: str, data: bytes, info: MessageInfo) -> None:
        # Logged at the middleware's reception, as rosbag2 does: a busy executor takes messages
        # from its queues in no order across topics, and late (from_bag orders steps by these).
        received = info["received_timestamp"] or self.get_clock().now().nanoseconds
        if topic == self.split_topic:
            self.bag.split()
        self.bag.write(topic, data, received, publish_time_ns=info["source_timestamp"] or received)


def main(args=None) -> None:
    rclpy.init(args=args, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = RecorderNode()
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    try:
        while rclpy.ok() and not stop:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.bag.close()  # the last episode is complete only on a clean stop
        node.get_logger().info(f"bag written: {node.output}")
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
