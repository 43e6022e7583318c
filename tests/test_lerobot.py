"""LeRobotDataset v3 export and import: the round trip, LeRobot's layout, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from sim.env import EnvConfig
from vla_policy.data import lerobot
from vla_policy.data.collect import collect
from vla_policy.data.hdf5_dataset import DatasetError, demo_names, open_dataset, read_episode, validate_dataset
from vla_policy.data.lerobot import export_lerobot, import_lerobot


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("lerobot") / "pick.hdf5"
    collect("pick", 2, out, seed=3, config=EnvConfig(task="pick", image_size=64))
    return out


@pytest.fixture(scope="module")
def exported(demos, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "pick_lerobot"
    export_lerobot(demos, out)
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / max(((a.astype(float) - b) ** 2).mean(), 1e-10)))


def test_round_trip_keeps_every_array_and_attribute_and_images_within_the_codec(demos, exported, tmp_path):
    back = tmp_path / "back.hdf5"
    summary = import_lerobot(exported, back)
    assert summary["demos"] == 2 and validate_dataset(back) == []
    with open_dataset(demos) as a, open_dataset(back) as b:
        assert demo_names(a) == demo_names(b)
        assert json.loads(a["data"].attrs["env_args"]) == json.loads(b["data"].attrs["env_args"])
        assert a["data"].attrs["model_file"] == b["data"].attrs["model_file"]
        for name in demo_names(a):
            x, y = read_episode(a["data"][name]), read_episode(b["data"][name])
            for key in ("actions", "states", "rewards", "dones", "final_state"):
                assert np.array_equal(getattr(x, key), getattr(y, key)), key
                assert getattr(x, key).dtype == getattr(y, key).dtype, key
            assert (x.instruction, x.task, x.seed, x.success, x.goal) == (
                y.instruction,
                y.task,
                y.seed,
                y.success,
                y.goal,
            )
            assert dict(a["data"][name].attrs) == dict(b["data"][name].attrs)
            for key, value in x.obs.items():
                if value.dtype == np.uint8:
                    assert y.obs[key].shape == value.shape and _psnr(value, y.obs[key]) >= 35, key
                else:
                    assert np.array_equal(value, y.obs[key]) and value.dtype == y.obs[key].dtype, key


def test_the_export_is_laid_out_as_lerobot_v3_reads_it(demos, exported):
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 20 and info["total_episodes"] == 2
    features = info["features"]
    assert features["observation.images.agentview"]["dtype"] == "video"
    assert features["observation.images.agentview"]["shape"] == [64, 64, 3]
    assert features["action"]["shape"] == [7] and features["observation.state"]["shape"] == [16]
    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    with open_dataset(demos) as f:
        lengths = [int(f["data"][n]["actions"].shape[0]) for n in demo_names(f)]
        instructions = [str(f["data"][n].attrs["instruction"]) for n in demo_names(f)]
    assert [e["length"] for e in episodes] == lengths and [e["tasks"] for e in episodes] == [[t] for t in instructions]
    assert episodes[1]["dataset_from_index"] == lengths[0] == episodes[0]["dataset_to_index"]
    frames = pq.read_table(exported / info["data_path"].format(chunk_index=0, file_index=0))
    assert frames.num_rows == sum(lengths) and frames.column("index").to_pylist() == list(range(sum(lengths)))
    for e in episodes:
        video = exported / info["video_path"].format(
            video_key="observation.images.wrist", chunk_index=0, file_index=e["episode_index"]
        )
        assert video.stat().st_size > 0 and e["videos/observation.images.wrist/to_timestamp"] == e["length"] / 20
    stats = json.loads((exported / "meta" / "stats.json").read_text())
    assert np.array(stats["observation.images.agentview"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [sum(lengths)]


def test_bad_input_is_one_clear_error_and_leaves_nothing_behind(demos, exported, tmp_path):
    out = tmp_path / "out.hdf5"
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        import_lerobot(tmp_path, out)
    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    video = next((broken / "videos" / "observation.images.wrist").rglob("file-001.mp4"))
    video.unlink()
    with pytest.raises(DatasetError, match=f"{video}: missing video"):
        import_lerobot(broken, out)
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists()
    shutil.rmtree(broken)
    shutil.copytree(exported, broken)
    info = json.loads((broken / "meta" / "info.json").read_text())
    info["features"]["observation.joint_pos"]["shape"] = [6]
    (broken / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="observation.joint_pos has 7 values a frame, info.json says shape \\[6\\]"):
        import_lerobot(broken, out)
    info["codebase_version"] = "v2.1"
    (broken / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="codebase_version v2.1"):
        import_lerobot(broken, out)
    assert not out.exists()
    with pytest.raises(DatasetError, match="exists; pass --overwrite"):
        export_lerobot(demos, exported)


def test_an_export_killed_mid_way_leaves_no_dataset(demos, tmp_path, monkeypatch):
    calls = []

    def encode_then_die(*args):
        calls.append(args)
        if len(calls) == 3:  # the second episode's first camera
            raise KeyboardInterrupt
        return encode(*args)

    encode = lerobot._encode
    monkeypatch.setattr(lerobot, "_encode", encode_then_die)
    out = tmp_path / "export"
    with pytest.raises(KeyboardInterrupt):
        export_lerobot(demos, out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_cli_exports_and_imports(demos, tmp_path, vla_cmd):
    import subprocess

    out = tmp_path / "lr"
    done = subprocess.run(
        [*vla_cmd, "dataset", "export", str(demos), "--format", "lerobot", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["episodes"] == 2
    back = subprocess.run(
        [*vla_cmd, "dataset", "import", str(out), "--out", str(tmp_path / "back.hdf5")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert back.returncode == 0 and json.loads(back.stdout)["demos"] == 2, back.stderr[-2000:]
    bad = subprocess.run(
        [*vla_cmd, "dataset", "import", str(tmp_path), "--out", str(tmp_path / "x.hdf5")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0 and "not a LeRobot dataset" in bad.stderr


def test_a_lerobot_dataset_from_elsewhere_imports_with_its_state_and_cameras(exported, tmp_path):
    """A dataset LeRobot users have: observation.state, cameras, actions and tasks only (no
    vla_stack extras, no simulator state)."""
    theirs = tmp_path / "theirs"
    shutil.copytree(exported, theirs)
    (theirs / "meta" / "vla_stack.json").unlink()
    keep = ["observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]
    data = theirs / "data" / "chunk-000" / "file-000.parquet"
    pq.write_table(pq.read_table(data).select(keep), data)
    episodes = theirs / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(episodes)
    pq.write_table(table.select([c for c in table.column_names if not c.startswith("vla_stack/")]), episodes)
    info = json.loads((theirs / "meta" / "info.json").read_text())
    info["features"] = {k: v for k, v in info["features"].items() if k in keep or v["dtype"] == "video"}
    (theirs / "meta" / "info.json").write_text(json.dumps(info))
    out = tmp_path / "theirs.hdf5"
    import_lerobot(theirs, out)
    assert validate_dataset(out) == []
    ours = pq.read_table(exported / "data" / "chunk-000" / "file-000.parquet")
    with open_dataset(out) as f:
        args = json.loads(f["data"].attrs["env_args"])
        assert args["type"] == "lerobot" and args["env_kwargs"]["control_freq"] == 20
        episode = read_episode(f["data"]["demo_0"])
        n = len(episode)
        state = np.asarray(ours.column("observation.state").to_pylist()[:n], dtype=np.float32)
        assert np.array_equal(episode.obs["state"], state) and episode.states.shape == (n, 0)
        assert sorted(episode.obs) == ["agentview_image", "state", "wrist_image"]
        assert episode.dones[-1] == 1 and episode.dones[:-1].sum() == 0
        assert episode.instruction == pq.read_table(episodes).column("tasks").to_pylist()[0][0]
