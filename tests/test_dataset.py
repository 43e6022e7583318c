"""HDF5 datasets: write/read round trip, validation, bad files, crash safety, exact replay."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from sim.env import EnvConfig, SimEnv
from sim.expert_policy import ExpertPolicy
from vla_policy.data.collect import collect
from vla_policy.data.hdf5_dataset import (
    DatasetError,
    dataset_info,
    demo_names,
    open_dataset,
    read_episode,
    validate_dataset,
)
from vla_policy.data.replay import replay
from vla_policy.data.store import parts_dir
from vla_policy.eval.rollout import rollout

CONFIG = EnvConfig(task="pick", cameras=("agentview", "wrist"), image_size=32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "pick.hdf5"
    summary = collect("pick", 3, out, workers=1, seed=100, noise_std=0.05, config=CONFIG)
    assert summary.kept == 3
    return out


def test_collected_file_is_packed_and_valid(dataset):
    assert validate_dataset(dataset) == []
    info = dataset_info(dataset)
    assert info["demos"] == 3 and info["packed"] and info["tasks"] == {"pick": 3}
    assert info["obs"]["agentview_image"] == {"shape": [32, 32, 3], "dtype": "uint8"}
    assert info["env_args"]["env_kwargs"]["image_size"] == 32
    assert not parts_dir(dataset).exists()


def test_write_read_round_trip(dataset):
    """What the file holds is exactly what a fresh rollout of the same seed produces."""
    with open_dataset(dataset) as f:
        stored = read_episode(f["data"]["demo_1"])
    with SimEnv(CONFIG) as env:
        fresh = rollout(env, ExpertPolicy(env, noise_std=0.05), seed=stored.seed)
    assert stored.instruction == fresh.instruction and stored.success and fresh.success
    for key in ("actions", "states", "rewards", "dones", "final_state"):
        np.testing.assert_array_equal(getattr(stored, key), getattr(fresh, key), err_msg=key)
    for key, value in fresh.obs.items():
        np.testing.assert_array_equal(stored.obs[key], value, err_msg=key)


def test_replay_actions_is_exact(dataset):
    result = replay(dataset, "actions")
    assert result["reproduction_rate"] == 1.0
    assert result["max_state_divergence"] == 0.0


def test_replay_states_rerenders_stored_images(dataset, tmp_path):
    result = replay(dataset, "states", demos=[0], video=tmp_path / "replay.mp4")
    assert result["per_demo"][0]["max_pixel_error"] == 0.0
    assert (tmp_path / "replay.mp4").stat().st_size > 1000


def test_replay_unknown_demo_is_clear(dataset):
    with pytest.raises(DatasetError, match="no demo"):
        replay(dataset, "actions", demos=[99])


def test_validate_names_each_problem(dataset, tmp_path):
    broken = tmp_path / "broken.hdf5"
    shutil.copy(dataset, broken)
    with h5py.File(broken, "a") as f:
        f["data/demo_0/actions"][3, 2] = np.nan
        del f["data/demo_1/rewards"]
        f["data/demo_1/rewards"] = np.zeros(2)
        del f["data/demo_2/states"]
    problems = validate_dataset(broken)
    assert "data/demo_0/actions: 1 NaN/inf values" in problems
    assert any(p.startswith("data/demo_1/rewards: length 2") for p in problems)
    assert "data/demo_2: missing 'states'" in problems


def test_truncated_and_garbage_files_are_clear_errors(dataset, tmp_path):
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(dataset.read_bytes()[:4096])
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    for path in (truncated, garbage):
        with pytest.raises(DatasetError, match="not a readable HDF5 file"):
            dataset_info(path)
        assert validate_dataset(path)[0].startswith(f"{path}: not a readable HDF5 file")
    other = tmp_path / "other.hdf5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(DatasetError, match="no 'data' group"):
        dataset_info(other)


def test_refuses_to_overwrite(dataset):
    with pytest.raises(DatasetError, match="already exists"):
        collect("pick", 1, dataset, config=CONFIG)


def test_parallel_workers_give_the_same_dataset(dataset, tmp_path):
    out = tmp_path / "parallel.hdf5"
    collect("pick", 3, out, workers=2, seed=100, noise_std=0.05, config=CONFIG)
    with open_dataset(dataset) as a, open_dataset(out) as b:
        assert demo_names(a) == demo_names(b)
        for name in demo_names(a):
            np.testing.assert_array_equal(a["data"][name]["actions"][()], b["data"][name]["actions"][()])
            assert a["data"][name].attrs["seed"] == b["data"][name].attrs["seed"]


def test_sigkill_during_collect_leaves_finished_episodes_readable(tmp_path, vla_cmd):
    out = tmp_path / "killed.hdf5"
    proc = subprocess.Popen(
        [*vla_cmd, "collect", "--task", "lift", "--episodes", "50", "--image-size", "32", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if out.exists():
                with h5py.File(out, "r") as f:
                    if len(f["data"]) >= 2:
                        break
            time.sleep(0.2)
        else:
            pytest.fail("collection produced no episodes in time")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert validate_dataset(out) == []
    with open_dataset(out) as f:
        names = demo_names(f)
        assert len(names) >= 2
        for name in names:
            episode = read_episode(f["data"][name])
            assert episode.success and len(episode) == episode.obs["agentview_image"].shape[0]
    packed = subprocess.run([*vla_cmd, "dataset", "pack", str(out)], capture_output=True, text=True, timeout=60)
    assert packed.returncode == 0, packed.stderr
    assert dataset_info(out)["packed"] and dataset_info(out)["demos"] == len(names)
    assert not parts_dir(out).exists()


def test_dagger_records_the_experts_labels_along_the_policys_rollout(tiny_checkpoint, tmp_path):
    config = EnvConfig(task="lift", image_size=32)
    out = tmp_path / "dagger.hdf5"
    summary = collect("lift", 2, out, seed=500, config=config, dagger_checkpoint=str(tiny_checkpoint))
    assert summary.kept == 2 and summary.success_rate == 0.0  # a 2-step policy fails; its rollouts are kept
    with open_dataset(out) as f:
        first = read_episode(f["data"][demo_names(f)[0]])
    with SimEnv(config) as env:
        obs = env.reset(seed=500)
        expert = ExpertPolicy(env)
        expert.reset()
        assert np.allclose(
            first.actions[0], np.clip(expert.select_action(obs), -1, 1)
        )  # the label, not the policy's act
        horizon = env.horizon
    assert not first.success and len(first.actions) == horizon  # the policy acted (the expert succeeds early)


def test_training_reads_several_datasets_as_one(dataset, tmp_path):
    from vla_policy.config import load_config
    from vla_policy.data.demos import fingerprint, load_demos

    copy = tmp_path / "copy.hdf5"
    shutil.copy(dataset, copy)
    model = load_config("tiny").model
    one, args = load_demos(str(dataset), model)
    both, both_args = load_demos(f"{dataset},{copy}", model)
    assert len(both) == 2 * len(one) and both_args == args
    assert fingerprint(str(dataset)) != fingerprint(f"{dataset},{copy}")
    lift = tmp_path / "lift.hdf5"
    collect("lift", 1, lift, config=EnvConfig(task="lift", image_size=32))
    with pytest.raises(DatasetError, match="env_args differ"):
        load_demos(f"{dataset},{lift}", model)


def test_info_plot_draws_lengths_actions_instructions_and_frames(dataset, tmp_path, vla_cmd):
    import matplotlib.image

    out = tmp_path / "pick.png"
    done = subprocess.run(
        [*vla_cmd, "dataset", "info", str(dataset), "--plot", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["plot"] == str(out)
    picture = matplotlib.image.imread(out)  # (H, W, 4) in [0, 1]
    assert picture.shape[1] == 16 * 80 and picture.shape[0] > 500  # 16 in at 80 dpi
    # The contact sheet holds the episodes' frames: the picture is not a blank page of axes.
    assert len(np.unique((picture[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 1000
