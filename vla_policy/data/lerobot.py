"""LeRobotDataset v3 (the LeRobot hub's format: parquet frames, mp4 videos, JSON/parquet metadata)
to and from this project's HDF5.

Layout written (LeRobot's `meta/info.json` paths)::

    meta/info.json                        codebase_version v3.0, fps, features, paths, totals
    meta/stats.json                       min/max/mean/std/count per feature (images in [0, 1])
    meta/tasks.parquet                    one row per instruction: index = task, task_index
    meta/episodes/chunk-000/file-000.parquet   per episode: tasks, length, where its rows and
                                          video segments are, plus vla_stack/* (seed, success,
                                          goal, task, final_state, clipped_actions)
    meta/vla_stack.json                   the HDF5 file's env_args and data attributes
    data/chunk-CCC/file-FFF.parquet       one row per frame: observation.<key>, action,
                                          sim_state, next.reward, next.done and LeRobot's indices
    videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4   one file per episode and camera

The instruction is the episode's task string; fps is the control rate. Every low-dimensional
array keeps its HDF5 dtype, so actions, proprio and states come back bit-exact; images go through
the video codec. The codec is H.264 at 4:4:4 (CRF 18, a key frame every 2 frames for random
access, as LeRobot's default GOP): 40 dB PSNR on 128 px tabletop frames, where LeRobot's default
AV1 at 4:2:0 gave 33-35 dB (chroma subsampling blurs the small coloured cubes); `vcodec`
chooses AV1 for the hub's default. `observation.state` (joint, gripper and end-effector
positions, as LeRobot policies expect) is written beside the per-key features.

Written and read with pyarrow, pandas and PyAV, the libraries LeRobot uses underneath. The
standalone lerobot-dataset package (0.4.4) imports torchvision at import time, which cannot load
beside this project's CPU torch build; scripts/check_lerobot_export.py loads an export with
lerobot-dataset's own LeRobotDataset in a separate venv.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_policy.data.hdf5_dataset import (
    DatasetError,
    check_output,
    demo_names,
    env_args,
    open_dataset,
    read_episode,
    write_dataset,
)
from vla_policy.types import Episode

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory (LeRobot's DEFAULT_CHUNK_SIZE)
DATA_FILE_MB = 100  # a new data file once one holds this much (LeRobot's default)
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
IMAGE_PREFIX = "observation.images."
STATE_KEYS = ("joint_pos", "gripper_qpos", "eef_pos", "eef_quat")  # observation.state, in order
VIDEO_CODECS = {
    "h264": ("libx264", "yuv444p", {"crf": "18", "g": "2"}),
    "av1": ("libsvtav1", "yuv420p", {"crf": "30", "g": "2"}),  # LeRobot's default
}
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
STATS_FRAME_STRIDE = 10  # image statistics from every 10th frame


# ------------------------------------------------------------------ export
def export_lerobot(source: str | Path, out: str | Path, vcodec: str = "h264", overwrite: bool = False) -> dict:
    """Write the HDF5 dataset `source` as a LeRobotDataset v3 directory `out` (atomically: built
    in `out`.tmp and renamed once complete). -> a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if vcodec not in VIDEO_CODECS:
        raise DatasetError(f"unknown video codec {vcodec!r}; choose {sorted(VIDEO_CODECS)}")
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} exists; pass --overwrite to replace it")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with open_dataset(source) as f:
            names = demo_names(f)
            if not names:
                raise DatasetError(f"{source}: no demos to export")
            args, attrs = env_args(f), {k: v for k, v in f["data"].attrs.items() if k not in ("env_args", "total")}
            fps = int(args.get("env_kwargs", {}).get("control_freq", 20))
            first = read_episode(f["data"][names[0]])
            features = _features(first, fps, vcodec)
            tasks: dict[str, int] = {}
            episodes, stats = [], _Stats(features)
            writer, data_file, file_bytes, index = None, 0, 0, 0
            for e, name in enumerate(tqdm(names, desc=f"export {Path(source).name}", unit="demo")):
                episode = read_episode(f["data"][name])
                _check_like(episode, first, f"{source}: data/{name}")
                task_index = tasks.setdefault(episode.instruction, len(tasks))
                table = pa.table(_frames(episode, e, index, task_index, fps))
                if writer is not None and file_bytes + table.nbytes > DATA_FILE_MB * 2**20:
                    writer.close()
                    writer, data_file, file_bytes = None, data_file + 1, 0
                if writer is None:
                    path = tmp / DATA_PATH.format(
                        chunk_index=data_file // CHUNKS_SIZE, file_index=data_file % CHUNKS_SIZE
                    )
                    path.parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(path, table.schema, compression="snappy")
                writer.write_table(table)
                file_bytes += table.nbytes
                row = {
                    "episode_index": e,
                    "tasks": [episode.instruction],
                    "length": len(episode),
                    "data/chunk_index": data_file // CHUNKS_SIZE,
                    "data/file_index": data_file % CHUNKS_SIZE,
                    "dataset_from_index": index,
                    "dataset_to_index": index + len(episode),
                    **_episode_attrs(episode),
                    "vla_stack/model_sha256": str(f["data"][name].attrs.get("model_sha256", "")),
                }
                for key in _video_keys(features):
                    frames = episode.obs[key[len(IMAGE_PREFIX) :] + "_image"]
                    path = tmp / VIDEO_PATH.format(
                        video_key=key, chunk_index=e // CHUNKS_SIZE, file_index=e % CHUNKS_SIZE
                    )
                    _encode(frames, path, fps, vcodec)
                    row |= {
                        f"videos/{key}/chunk_index": e // CHUNKS_SIZE,
                        f"videos/{key}/file_index": e % CHUNKS_SIZE,
                        f"videos/{key}/from_timestamp": 0.0,
                        f"videos/{key}/to_timestamp": len(episode) / fps,
                    }
                stats.add(episode, table)
                episodes.append(row)
                index += len(episode)
            if writer is not None:
                writer.close()
        _write_meta(tmp, features, fps, tasks, episodes, stats.result(), args, attrs, _robot_type(args))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"source": str(source), "out": str(out), "episodes": len(episodes), "frames": index, "fps": fps}


def _features(episode: Episode, fps: int, vcodec: str) -> dict:
    codec, pix_fmt, _ = VIDEO_CODECS[vcodec]
    features = {}
    for key, value in episode.obs.items():
        if _is_image(value):
            h, w, c = value.shape[1:]
            features[IMAGE_PREFIX + key.removesuffix("_image")] = {
                "dtype": "video",
                "shape": [h, w, c],
                "names": ["height", "width", "channels"],
                "info": {
                    "video.height": h,
                    "video.width": w,
                    "video.codec": "h264" if codec == "libx264" else "av1",
                    "video.pix_fmt": pix_fmt,
                    "video.is_depth_map": False,
                    "video.fps": fps,
                    "video.channels": c,
                    "has_audio": False,
                },
            }
        else:
            features[f"observation.{key}"] = _array_feature(value)
    if all(k in episode.obs for k in STATE_KEYS):
        names = [f"{k}_{i}" for k in STATE_KEYS for i in range(episode.obs[k].shape[1])]
        features["observation.state"] = {"dtype": "float32", "shape": [len(names)], "names": names}
    features["action"] = {**_array_feature(episode.actions), "names": ACTION_NAMES[: episode.actions.shape[1]]}
    if episode.states.shape[1]:  # recordings from a robot have no simulator state
        features["sim_state"] = _array_feature(episode.states)
    features["next.reward"] = {"dtype": str(episode.rewards.dtype), "shape": [1], "names": None}
    features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
    for key, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64")):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}
    features["index"] = {"dtype": "int64", "shape": [1], "names": None}
    features["task_index"] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _array_feature(value: np.ndarray) -> dict:
    return {"dtype": str(value.dtype), "shape": list(value.shape[1:]), "names": None}


def _is_image(value: np.ndarray) -> bool:
    return value.dtype == np.uint8 and value.ndim == 4 and value.shape[-1] == 3


def _video_keys(features: dict) -> list[str]:
    return [k for k, v in features.items() if v["dtype"] == "video"]


def _check_like(episode: Episode, first: Episode, where: str) -> None:
    for key, value in first.obs.items():
        if key not in episode.obs or episode.obs[key].shape[1:] != value.shape[1:]:
            got = episode.obs[key].shape[1:] if key in episode.obs else "missing"
            raise DatasetError(
                f"{where}: obs/{key} is {got}, the first demo's {value.shape[1:]}; one feature shape per dataset"
            )


def _frames(episode: Episode, e: int, start: int, task_index: int, fps: int) -> dict:
    """The data parquet's columns for one episode (images live in the videos)."""
    n = len(episode)
    columns = {f"observation.{k}": _column(v) for k, v in episode.obs.items() if not _is_image(v)}
    if all(k in episode.obs for k in STATE_KEYS):
        columns["observation.state"] = _column(
            np.concatenate([episode.obs[k] for k in STATE_KEYS], 1).astype(np.float32)
        )
    columns |= {
        "action": _column(episode.actions),
        **({"sim_state": _column(episode.states)} if episode.states.shape[1] else {}),
        "next.reward": episode.rewards,
        "next.done": episode.dones.astype(bool),
        "timestamp": (np.arange(n) / fps).astype(np.float32),
        "frame_index": np.arange(n, dtype=np.int64),
        "episode_index": np.full(n, e, dtype=np.int64),
        "index": np.arange(start, start + n, dtype=np.int64),
        "task_index": np.full(n, task_index, dtype=np.int64),
    }
    return columns


def _column(value: np.ndarray):
    """(T, D) -> a fixed-size list column of D values (the shape LeRobot's loaders read)."""
    import pyarrow as pa

    flat = np.ascontiguousarray(value).reshape(len(value), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _episode_attrs(episode: Episode) -> dict:
    return {
        "vla_stack/task": episode.task,
        "vla_stack/seed": episode.seed,
        "vla_stack/success": episode.success,
        "vla_stack/goal": json.dumps(episode.goal),
        "vla_stack/clipped_actions": episode.clipped_actions,
        "vla_stack/final_state": episode.final_state.tolist(),
    }


def _encode(frames: np.ndarray, path: Path, fps: int, vcodec: str) -> None:
    """(T, H, W, 3) uint8 -> an mp4 of T frames at `fps`."""
    import av

    codec, pix_fmt, options = VIDEO_CODECS[vcodec]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


class _Stats:
    """Running min/max/mean/std/count per feature, LeRobot's stats.json (images per channel in [0, 1])."""

    def __init__(self, features: dict):
        self.sums: dict[str, list] = {}
        self.features = features

    def _add(self, key: str, x: np.ndarray) -> None:  # x (N, ...) reduced over axis 0 (and space for images)
        x = x.astype(np.float64)
        s = self.sums.setdefault(key, [np.inf, -np.inf, 0.0, 0.0, 0])
        s[0], s[1] = np.minimum(s[0], x.min(0)), np.maximum(s[1], x.max(0))
        s[2], s[3], s[4] = s[2] + x.sum(0), s[3] + (x * x).sum(0), s[4] + len(x)

    def add(self, episode: Episode, table) -> None:
        for key, feature in self.features.items():
            if feature["dtype"] == "video":
                frames = episode.obs[key[len(IMAGE_PREFIX) :] + "_image"][::STATS_FRAME_STRIDE] / 255.0
                self._add(key, frames.reshape(-1, 3))
            elif feature["dtype"] not in ("string",):
                column = table.column(key).combine_chunks()
                values = column.flatten().to_numpy(zero_copy_only=False) if hasattr(column, "flatten") else column
                self._add(key, np.asarray(values, dtype=np.float64).reshape(len(table), -1))

    def result(self) -> dict:
        out = {}
        for key, (lo, hi, total, squares, n) in self.sums.items():
            mean = total / n
            std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
            shape = (3, 1, 1) if self.features[key]["dtype"] == "video" else (-1,)
            out[key] = {
                "min": np.reshape(lo, shape).tolist(),
                "max": np.reshape(hi, shape).tolist(),
                "mean": np.reshape(mean, shape).tolist(),
                "std": np.reshape(std, shape).tolist(),
                "count": [int(n)],
            }
        return out


def _robot_type(args: dict) -> str | None:
    robots = args.get("env_kwargs", {}).get("robots")
    return (robots[0] if isinstance(robots, list) else robots) if robots else args.get("type")


def _write_meta(root: Path, features, fps, tasks, episodes, stats, args, attrs, robot_type) -> None:
    import pandas as pd

    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    frames = sum(e["length"] for e in episodes)
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episodes),
        "total_frames": frames,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": 200,
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if _video_keys(features) else None,
        "features": features,
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (root / "meta" / "stats.json").write_text(json.dumps(stats, indent=4))
    pd.DataFrame({"task_index": list(tasks.values())}, index=list(tasks)).to_parquet(root / "meta" / "tasks.parquet")
    pd.DataFrame(episodes).assign(**{"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}).to_parquet(
        root / EPISODES_PATH, index=False
    )
    extra = {"env_args": args, "data_attrs": {k: v.item() if hasattr(v, "item") else v for k, v in attrs.items()}}
    (root / "meta" / "vla_stack.json").write_text(json.dumps(extra, indent=2, default=str))


# ------------------------------------------------------------------ import
def import_lerobot(source: str | Path, out: str | Path, overwrite: bool = False) -> dict:
    """Read a LeRobotDataset v3 directory (this project's export or another's) into an HDF5
    dataset `out` (atomically). Cameras become `<cam>_image`; the task string is the instruction."""
    source, out = Path(source), check_output(out, overwrite)
    info, episodes, tasks = _read_meta(source)
    extra_path = source / "meta" / "vla_stack.json"
    extra = json.loads(extra_path.read_text()) if extra_path.exists() else {}
    features = info["features"]
    cameras = [k[len(IMAGE_PREFIX) :] for k in _video_keys(features)]
    args = extra.get("env_args") or {
        "env_name": source.name,
        "type": "lerobot",
        "env_kwargs": {"cameras": cameras, "control_freq": info["fps"], "robots": info.get("robot_type")},
    }
    if "action" not in features:
        raise DatasetError(f"{source / 'meta' / 'info.json'}: no 'action' feature; nothing to train on")
    reader = _FrameReader(source, info)
    count = write_dataset(
        out,
        args,
        (
            _episode(source, info, row, tasks, reader)
            for row in tqdm(episodes, desc=f"import {source.name}", unit="episode")
        ),
        extra.get("data_attrs"),
    )
    return {"source": str(source), "out": str(out), "demos": count, "frames": int(info["total_frames"])}


def _read_meta(source: Path):
    import pandas as pd
    import pyarrow.parquet as pq

    info_path = source / "meta" / "info.json"
    if not info_path.exists():
        raise DatasetError(f"{source}: not a LeRobot dataset (no meta/info.json)")
    info = json.loads(info_path.read_text())
    version = str(info.get("codebase_version", "?"))
    if not version.startswith("v3"):
        raise DatasetError(
            f"{info_path}: codebase_version {version}; this reads v3.0 (convert older ones with LeRobot's "
            "convert_dataset_v21_to_v30)"
        )
    files = sorted((source / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{source}: no meta/episodes/chunk-*/file-*.parquet")
    episodes = [row for path in files for row in pq.read_table(path).to_pylist()]
    tasks_path = source / "meta" / "tasks.parquet"
    if not tasks_path.exists():
        raise DatasetError(f"{source}: no meta/tasks.parquet")
    tasks = {int(i): str(t) for t, i in pd.read_parquet(tasks_path)["task_index"].items()}
    return info, sorted(episodes, key=lambda r: r["episode_index"]), tasks


class _FrameReader:
    """Data rows by global index, from the data parquet files an episode names (cached per file)."""

    def __init__(self, root: Path, info: dict):
        self.root, self.info, self.cached = root, info, (None, None)

    def rows(self, chunk: int, file: int, start: int, stop: int) -> dict[str, np.ndarray]:
        import pyarrow.parquet as pq

        path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        if self.cached[0] != path:
            if not path.exists():
                raise DatasetError(f"{path}: missing (the episodes metadata points to it)")
            self.cached = (path, pq.read_table(path))
        table = self.cached[1]
        index = table.column("index").to_numpy()
        rows = table.take(np.flatnonzero((index >= start) & (index < stop)))
        if rows.num_rows != stop - start:
            raise DatasetError(f"{path}: holds {rows.num_rows} of the rows {start}..{stop - 1} an episode needs")
        out = {}
        for name in rows.column_names:
            column = rows.column(name).combine_chunks()
            if hasattr(column, "flatten"):  # list columns: (N, D)
                out[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(rows.num_rows, -1)
            else:
                out[name] = column.to_numpy(zero_copy_only=False)
        return out


def _episode(source: Path, info: dict, row: dict, tasks: dict[int, str], reader: _FrameReader):
    """-> (Episode, its demo group's other attributes)."""
    features, n = info["features"], int(row["length"])
    data = reader.rows(
        row["data/chunk_index"], row["data/file_index"], row["dataset_from_index"], row["dataset_to_index"]
    )
    obs = {}
    for key, feature in features.items():
        if feature["dtype"] == "video":
            cam = key[len(IMAGE_PREFIX) :]
            path = source / info["video_path"].format(
                video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
            )
            frames = _decode(path, row[f"videos/{key}/from_timestamp"], n, info["fps"])
            if frames.shape[1:] != tuple(feature["shape"]):
                raise DatasetError(f"{path}: frames {frames.shape[1:]}, info.json says {key} is {feature['shape']}")
            obs[f"{cam}_image"] = frames
        elif key.startswith("observation.") and key in data:
            if key == "observation.state" and any(f"observation.{k}" in data for k in STATE_KEYS):
                continue  # written beside the per-key features they came from
            obs[key.removeprefix("observation.")] = _shaped(data[key], feature, source, key)
    task = tasks.get(int(data["task_index"][0]), row["tasks"][0] if row.get("tasks") else "")
    actions = _shaped(data["action"], features["action"], source, "action")
    states = (
        _shaped(data["sim_state"], features["sim_state"], source, "sim_state")
        if "sim_state" in data
        else np.zeros((n, 0))
    )
    dones = data["next.done"].astype(np.uint8) if "next.done" in data else (np.arange(n) == n - 1).astype(np.uint8)
    final_state = row.get("vla_stack/final_state")
    extra = {"model_sha256": row["vla_stack/model_sha256"]} if row.get("vla_stack/model_sha256") else {}
    return Episode(
        obs=obs,
        actions=actions,
        states=states,
        rewards=data["next.reward"].reshape(n) if "next.reward" in data else np.zeros(n),
        dones=dones.reshape(n),
        final_state=np.asarray(final_state, dtype=states.dtype) if final_state is not None else states[-1],
        instruction=task,
        task=row.get("vla_stack/task") or str(info.get("robot_type") or source.name),
        seed=int(row.get("vla_stack/seed", -1)),
        success=bool(row.get("vla_stack/success", False)),
        goal=json.loads(row.get("vla_stack/goal") or "{}"),
        clipped_actions=int(row.get("vla_stack/clipped_actions", 0)),
    ), extra


def _shaped(values: np.ndarray, feature: dict, source: Path, key: str) -> np.ndarray:
    shape = [int(s) for s in feature["shape"]]
    per_row = int(np.prod(shape))
    if values.reshape(len(values), -1).shape[1] != per_row:
        raise DatasetError(
            f"{source}: feature {key} has {values.reshape(len(values), -1).shape[1]} values a frame, info.json says shape {shape}"
        )
    return values.reshape(len(values), *shape).astype(feature["dtype"], copy=False)


def _decode(path: Path, start_s: float, count: int, fps: int) -> np.ndarray:
    """`count` frames from `start_s` seconds on -> (count, H, W, 3) uint8."""
    import av

    if not path.exists():
        raise DatasetError(f"{path}: missing video (the episodes metadata points to it)")
    frames = []
    tolerance = 0.5 / fps
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if start_s > tolerance:
                container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None or frame.time < start_s - tolerance:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == count:
                    break
    except av.error.FFmpegError as error:
        raise DatasetError(f"{path}: not a readable video ({error})") from error
    if len(frames) != count:
        raise DatasetError(f"{path}: {len(frames)} frames from {start_s:.3f} s, the episode has {count}")
    return np.stack(frames)
