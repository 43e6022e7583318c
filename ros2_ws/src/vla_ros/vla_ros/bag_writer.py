"""A rosbag2 directory in MCAP storage, one file per episode, that survives being killed.

Messages arrive already CDR-serialised (rclpy raw subscriptions) and go to the current .mcap
file unchanged (mcap's writer, ros2 profile, ros2msg schemas as rosbag2 writes them).
`split()` closes the current file and lists it in metadata.yaml, which is rewritten atomically
after every closed file: a recorder killed mid-episode leaves that episode's file without a
footer and unlisted, and every earlier episode intact and readable (rosbags, ros2 bag, Foxglove).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.writer import CompressionType, Writer
from rosbags.typesys import Stores, get_typestore

_TYPESTORE = get_typestore(Stores.ROS2_KILTED)


@dataclass
class _Topic:
    name: str
    type: str  # e.g. sensor_msgs/msg/Image
    qos: str  # offered QoS profiles, rosbag2 YAML
    count: int = 0


@dataclass
class _File:
    path: str
    start: int = 2**63
    end: int = 0
    count: int = 0


@dataclass
class BagWriter:
    directory: Path
    topics: dict[str, _Topic] = field(default_factory=dict)
    files: list[_File] = field(default_factory=list)

    def __post_init__(self):
        self.directory = Path(self.directory)
        if (self.directory / "metadata.yaml").exists():
            raise FileExistsError(f"{self.directory} already holds a bag; choose a new output directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._writer: Writer | None = None
        self._channels: dict[str, int] = {}

    def add_topic(self, name: str, msg_type: str, qos_yaml: str = "") -> None:
        """Register a topic (type as pkg/msg/Name) before writing to it."""
        if msg_type not in _TYPESTORE.types:
            raise ValueError(f"unknown message type {msg_type!r} for {name}")
        self.topics[name] = _Topic(name, msg_type, qos_yaml)

    def write(self, topic: str, serialized: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        """One message: `log_time_ns` when it was received, `publish_time_ns` when it was sent
        (the publisher's clock; the log time when unknown), as rosbag2's MCAP storage keeps them."""
        if self._writer is None:
            self._open()
        if topic not in self._channels:
            self._channels[topic] = self._register(topic)
        self._writer.add_message(
            self._channels[topic],
            log_time=log_time_ns,
            data=serialized,
            publish_time=log_time_ns if publish_time_ns is None else publish_time_ns,
        )
        current = self.files[-1]
        current.start, current.end = min(current.start, log_time_ns), max(current.end, log_time_ns)
        current.count += 1
        self.topics[topic].count += 1

    def split(self) -> None:
        """Close the current file (if it has messages) and list it; the next write opens another."""
        if self._writer is None:
            return
        self._writer.finish()
        self._stream.close()
        self._writer = None
        self._write_metadata()

    close = split

    # ------------------------------------------------------------------ internals
    def _open(self) -> None:
        path = self.directory / f"{self.directory.name}_{len(self.files)}.mcap"
        self._stream = open(path, "wb")
        self._writer = Writer(self._stream, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="vla_ros")
        self._channels, self._schemas = {}, {}
        self.files.append(_File(path.name))

    def _register(self, topic: str) -> int:
        t = self.topics[topic]
        if t.type not in self._schemas:
            msgdef, _ = _TYPESTORE.generate_msgdef(t.type, ros_version=2)
            self._schemas[t.type] = self._writer.register_schema(t.type, "ros2msg", msgdef.encode())
        return self._writer.register_channel(topic, "cdr", self._schemas[t.type], {"offered_qos_profiles": t.qos})

    def _write_metadata(self) -> None:
        done = [f for f in self.files if f.count]
        start = min((f.start for f in done), default=0)
        end = max((f.end for f in done), default=0)
        info = {
            "version": 8,
            "storage_identifier": "mcap",
            "relative_file_paths": [f.path for f in done],
            "duration": {"nanoseconds": max(0, end - start)},
            "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": sum(f.count for f in done),
            "topics_with_message_count": [
                {
                    "topic_metadata": {
                        "name": t.name,
                        "type": t.type,
                        "serialization_format": "cdr",
                        "offered_qos_profiles": t.qos,
                        "type_description_hash": "",
                    },
                    "message_count": t.count,
                }
                for t in self.topics.values()
                if t.count
            ],
            "compression_format": "",
            "compression_mode": "",
            "files": [
                {
                    "path": f.path,
                    "starting_time": {"nanoseconds_since_epoch": f.start},
                    "duration": {"nanoseconds": f.end - f.start},
                    "message_count": f.count,
                }
                for f in done
            ],
            "custom_data": None,
            "ros_distro": os.environ.get("ROS_DISTRO", "kilted"),
        }
        tmp = self.directory / "metadata.yaml.tmp"
        tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
        tmp.replace(self.directory / "metadata.yaml")
