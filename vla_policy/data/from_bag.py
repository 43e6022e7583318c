"""rosbag2 recordings (policy or teleoperation sessions) -> the HDF5 training format.

Each file of the bag that holds camera frames and actions becomes one demo (recorder_node starts
a file per episode at each `sim/episode`; when the bag has those markers, files without one -- what
was recorded before the first episode -- are skipped); its instruction is the one received nearest
its `sim/episode` marker (`_instruction`), or without markers the first recorded in the file, or
the last one before it. A step is one frame of the reference (first) camera:
the other cameras, joint states and end-effector pose nearest to its stamp form the observation,
and the action is the newest `vla/action` received before the next frame -- the command the
robot executed between the two frames. Frames received before the episode's marker are not its
own (a robot publishes while it waits, and the recorder may file a frame it had not yet written
after the marker's split); the episode ends at its first success or episode-end message. Times
are the bag's log times, which recorder_node takes from the middleware's reception, not from
when its executor got to the message. Recordings hold no simulator state, so `states` has zero columns: such a dataset
trains and evaluates, but cannot be replayed state by state.

Reads with `rosbags` (pure Python); nothing here imports ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from vla_policy.data.hdf5_dataset import DatasetError, check_output, write_dataset
from vla_policy.data.images import decode_rgb
from vla_policy.types import Episode

SIM_ARM = tuple(f"robot0_joint{i}" for i in range(1, 8))
SIM_GRIPPER = ("gripper0_right_finger_joint1", "gripper0_right_finger_joint2")


@dataclass(frozen=True)
class BagTopics:
    cameras: tuple[str, ...] = ("agentview", "wrist")  # /camera/<name>/image_raw; the first sets the steps
    joint_states: str = "/joint_states"
    eef_pose: str = "/eef_pose"
    instruction: str = "/vla/instruction"
    action: str = "/vla/action"
    success: str = "/vla/success"
    episode_end: str = "/sim/episode_end"
    episode_start: str = "/sim/episode"  # when the bag has it, only files that hold one are episodes
    arm_joints: tuple[str, ...] = SIM_ARM
    gripper_joints: tuple[str, ...] = SIM_GRIPPER

    def camera_topic(self, camera: str) -> str:
        return f"/camera/{camera}/image_raw"


@dataclass
class _Stream:
    stamps: list[float] = field(default_factory=list)  # header stamps (s) or receive times
    values: list = field(default_factory=list)

    def nearest(self, stamp: float):
        i = int(np.argmin(np.abs(np.asarray(self.stamps) - stamp)))
        return self.values[i]


def _stamp(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def _read_file(reader: AnyReader, topics: BagTopics) -> dict:
    """Every message of one bag file, decoded into numpy and grouped by role."""
    streams: dict[str, _Stream] = {name: _Stream() for name in ("joints", "pose", "action", *topics.cameras)}
    instructions, ends, starts = [], [], []
    by_topic = {topics.camera_topic(c): c for c in topics.cameras}
    names = list(topics.arm_joints + topics.gripper_joints)
    for connection, log_time, raw in reader.messages():
        msg = reader.deserialize(raw, connection.msgtype)
        topic, received = connection.topic, log_time * 1e-9
        if topic in by_topic:
            streams[by_topic[topic]].stamps.append(_stamp(msg))
            image = decode_rgb(msg.data, msg.height, msg.width, msg.step, msg.encoding)
            streams[by_topic[topic]].values.append((received, image))
        elif topic == topics.joint_states:
            index = {n: i for i, n in enumerate(msg.name)}
            if all(n in index for n in names):
                streams["joints"].stamps.append(_stamp(msg))
                streams["joints"].values.append(np.array([msg.position[index[n]] for n in names]))
        elif topic == topics.eef_pose:
            p, q = msg.pose.position, msg.pose.orientation
            streams["pose"].stamps.append(_stamp(msg))
            streams["pose"].values.append((np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z])))
        elif topic == topics.action:
            streams["action"].stamps.append(received)
            streams["action"].values.append(np.asarray(msg.data, dtype=np.float64))
        elif topic == topics.instruction:
            instructions.append((received, msg.data))
        elif topic == topics.episode_start:
            starts.append(received)
        elif (topic == topics.success and msg.data) or topic == topics.episode_end:
            ends.append((received, bool(msg.data)))
    return {"streams": streams, "instructions": instructions, "ends": ends, "starts": starts}


def _episode(data: dict, instruction: str | None, topics: BagTopics, task: str, index: int) -> Episode | None:
    """One demo from one file's messages, or None when the file holds no complete episode."""
    s = data["streams"]
    reference = s[topics.cameras[0]]
    if instruction is None or not reference.stamps or not s["action"].stamps or not s["joints"].stamps:
        return None
    start_time = min(data["starts"], default=-np.inf)
    end_time = min((t for t, _ in data["ends"]), default=np.inf)
    success = any(ok for _, ok in data["ends"])
    action_times = np.asarray(s["action"].stamps)
    steps = []
    for i in range(len(reference.stamps) - 1):
        if reference.values[i][0] < start_time:  # sent before the episode began: the scene it shows is gone
            continue
        received_next = reference.values[i + 1][0]
        if received_next >= end_time:  # the next frame shows no action's result: the episode is over
            break
        before = np.nonzero(action_times < received_next)[0]
        if len(before):
            steps.append((reference.stamps[i], s["action"].values[before[-1]]))
    if not steps:
        return None
    obs: dict[str, list] = {f"{c}_image": [] for c in topics.cameras}
    obs.update(joint_pos=[], gripper_qpos=[], eef_pos=[], eef_quat=[])
    arm = len(topics.arm_joints)
    for stamp, _ in steps:
        for camera in topics.cameras:
            obs[f"{camera}_image"].append(s[camera].nearest(stamp)[1])
        joints = s["joints"].nearest(stamp)
        obs["joint_pos"].append(joints[:arm])
        obs["gripper_qpos"].append(joints[arm:])
        if s["pose"].stamps:
            pos, quat = s["pose"].nearest(stamp)
            obs["eef_pos"].append(pos)
            obs["eef_quat"].append(quat)
    arrays = {k: np.stack(v) for k, v in obs.items() if v}
    actions = np.clip(np.stack([a for _, a in steps]), -1.0, 1.0)
    length = len(steps)
    rewards = np.zeros(length)
    rewards[-1] = float(success)
    dones = np.zeros(length, np.uint8)
    dones[-1] = 1
    return Episode(
        obs=arrays,
        actions=actions,
        states=np.zeros((length, 0)),
        rewards=rewards,
        dones=dones,
        final_state=np.zeros(0),
        instruction=instruction,
        task=task,
        seed=index,
        success=success,
        goal={"source": "rosbag2"},
    )


def _instruction(carried: list[tuple[float, str]], own: list[tuple[float, str]], starts: list[float]) -> str | None:
    """The episode's instruction among the one carried over from the file before and the file's own
    ((receive time, text) pairs).

    An instruction holds until the next one. sim_node publishes an episode's marker and its
    instruction together, but topics are not ordered against each other: the instruction may be
    received just before the split (it then ends the previous file, whence it is carried over) or
    just after it, and a short episode's file may already hold the next episode's instruction. So
    with a marker the instruction is the one received nearest to it; without one (an operator's
    recording), the first the file holds, else the one carried over.
    """
    candidates = carried + own
    if not candidates:
        return None
    if starts:
        return min(candidates, key=lambda c: abs(c[0] - starts[0]))[1]
    return (own or carried)[0][1]


def convert_bag(
    bag: str | Path, out: str | Path, task: str = "rosbag", topics: BagTopics = BagTopics(), overwrite: bool = False
) -> dict:
    """Write every complete episode of `bag` to `out` (.hdf5; an existing file only with
    `overwrite`, as `vla collect`); returns a summary."""
    bag, out = Path(bag), check_output(out, overwrite)
    if not (bag / "metadata.yaml").exists():
        raise DatasetError(f"{bag}: not a rosbag2 directory (no metadata.yaml)")
    typestore = get_typestore(Stores.ROS2_KILTED)
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    files = [bag / p for p in info["relative_file_paths"]]
    marked = any(t["topic_metadata"]["name"] == topics.episode_start for t in info["topics_with_message_count"])
    episodes, periods, skipped, last_instruction = [], [], 0, []
    for path in tqdm(files, desc=f"read {bag.name}", unit="file"):
        with AnyReader([path], default_typestore=typestore) as reader:
            data = _read_file(reader, topics)
        own = data["instructions"]
        instruction = _instruction(last_instruction, own, data["starts"])
        last_instruction = own[-1:] or last_instruction
        episode = None if marked and not data["starts"] else _episode(data, instruction, topics, task, len(episodes))
        if episode is None:
            skipped += 1
            continue
        episodes.append(episode)
        periods += list(np.diff(data["streams"][topics.cameras[0]].stamps))
    if not episodes:
        raise DatasetError(f"{bag}: no file holds an instruction, {topics.cameras[0]} frames, joint states and actions")
    control_freq = int(round(1.0 / float(np.median(periods)))) if periods else 20
    image = episodes[0].obs[f"{topics.cameras[0]}_image"]
    env_args = {
        "env_name": task,
        "type": "rosbag2",
        "source": str(bag),
        "env_kwargs": {
            "task": task,
            "cameras": list(topics.cameras),
            "image_size": int(image.shape[1]),
            "control_freq": control_freq,
        },
    }
    write_dataset(out, env_args, episodes)
    return {
        "bag": str(bag),
        "out": str(out),
        "demos": len(episodes),
        "skipped_files": skipped,
        "steps": int(sum(len(e) for e in episodes)),
        "successes": int(sum(e.success for e in episodes)),
        "control_freq": control_freq,
    }
