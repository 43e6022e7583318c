"""robomimic export: robosuite's layout and names, what robosuite computes at each stored state,
and clear refusals. robomimic itself checks a file with scripts/check_robomimic_export.py (its own
venv; result in docs/RESULTS.md)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from sim.env import EnvConfig, SimEnv
from vla_policy.data.collect import collect
from vla_policy.data.hdf5_dataset import DatasetError, open_dataset
from vla_policy.data.robomimic import export_robomimic


@pytest.fixture(scope="module")
def lift(tmp_path_factory):
    out = tmp_path_factory.mktemp("robomimic") / "lift.hdf5"
    collect("lift", 2, out, seed=11, config=EnvConfig(task="lift", image_size=32))
    return out


def test_export_holds_robosuites_states_names_and_observations(lift, tmp_path):
    out = tmp_path / "lift_robomimic.hdf5"
    summary = export_robomimic(lift, out)
    assert summary["demos"] == 2 and summary["env_name"] == "Lift"
    with open_dataset(lift) as src, h5py.File(out) as f:
        meta = json.loads(f["data"].attrs["env_args"])
        assert meta["type"] == 1 and meta["env_name"] == "Lift"
        assert meta["env_kwargs"]["camera_names"] == ["agentview", "robot0_eye_in_hand"]
        assert [n.decode() for n in f["mask/train"][()]] == ["demo_0", "demo_1"]
        env = SimEnv(EnvConfig(task="lift", cameras=()))
        nq, nv = env.model.nq, env.model.nv
        for name in ("demo_0", "demo_1"):
            demo, ours = f[f"data/{name}"], src[f"data/{name}"]
            states = demo["states"][()]
            assert states.shape == (ours["states"].shape[0], 1 + nq + nv)  # robosuite's [time, qpos, qvel]
            assert np.array_equal(states, ours["states"][()][:, : 1 + nq + nv])
            assert np.array_equal(demo["actions"][()], ours["actions"][()])
            assert "<mujoco" in demo.attrs["model_file"] and demo.attrs["num_samples"] == len(states)
            # robosuite's own observations at the restored states, under its names
            assert np.allclose(demo["obs/robot0_joint_pos"][()], ours["obs/joint_pos"][()])
            assert np.allclose(demo["obs/robot0_eef_pos"][()], ours["obs/eef_pos"][()], atol=1e-6)
            wxyz = ours["obs/eef_quat"][()]
            xyzw = demo["obs/robot0_eef_quat_site"][()]  # robosuite's site quaternion is (x, y, z, w)
            assert np.allclose(np.abs((xyzw[:, [3, 0, 1, 2]] * wxyz).sum(1)), 1.0, atol=1e-4)  # the same rotation
            assert demo["obs/object"].shape == (len(states), 10)  # cube pos, quat, gripper-to-cube
            assert demo["obs/agentview_image"].shape == (len(states), 32, 32, 3)
            assert np.array_equal(demo["next_obs/robot0_joint_pos"][:-1], demo["obs/robot0_joint_pos"][1:])
        env.close()


def test_scenes_robomimic_cannot_rebuild_are_refused_with_nothing_written(tmp_path):
    pick = tmp_path / "pick.hdf5"
    collect("pick", 1, pick, seed=2, config=EnvConfig(task="pick", cameras=()))
    out = tmp_path / "pick_robomimic.hdf5"
    with pytest.raises(DatasetError, match="task 'pick' is a vla_stack scene robomimic cannot rebuild"):
        export_robomimic(pick, out)
    assert not out.exists() and not out.with_name(out.name + ".tmp").exists()
