"""Meta-World MT50 behind the env API: every task resets and steps with upright images, the
scripted experts solve, collect -> validate -> replay is exact."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from concurrent.futures import ProcessPoolExecutor

import h5py
import numpy as np
import pytest

from sim.env import EnvConfig, make_env
from sim.expert_policy import ExpertPolicy
from sim.tasks import TASKS
from sim.tasks.meta_world import GROUPS, MT10, MT50

pytest.importorskip("metaworld")


def _reset_and_step(task: str) -> dict:
    env = make_env(EnvConfig(task=task, cameras=("corner2", "wrist"), image_size=48))
    try:
        obs = env.reset(seed=1_000_000)
        obs, _, _, _, info = env.step(np.array([0.0, 0.0, 0.5, -1.0]))
        camera = env._cameras["corner2"]
        up = env.data.cam_xmat[camera].reshape(3, 3)[:, 1] * (-1 if env.upside_down(camera) else 1)
        return {
            "shapes": {k: obs[k].shape for k in ("corner2_image", "wrist_image", "agent_pos", "joint_pos")},
            # what a robot publishes (eef_pose, joint_states' gripper_opening) is agent_pos in parts
            "agent_pos_in_parts": bool(np.array_equal(obs["agent_pos"], np.r_[obs["eef_pos"], obs["gripper_qpos"]])),
            "unit_quat": bool(np.isclose(np.linalg.norm(obs["eef_quat"]), 1.0)),
            "dtype": str(obs["corner2_image"].dtype),
            "image_up_z": float(up[2]),  # the world-z of the rendered image's up direction
            "instruction": obs["instruction"],
            "steps": info["steps"],
        }
    finally:
        env.close()


def test_every_mt50_task_resets_and_steps_with_upright_images_of_the_configured_size():
    assert len(MT50) == 50 and set(MT10) <= set(MT50) and all(t in TASKS for t in MT50)
    assert [len(GROUPS[f"metaworld-{d}"]) for d in ("easy", "medium", "hard", "very_hard")] == [28, 11, 6, 5]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:  # no fork of EGL
        results = dict(zip(MT50, pool.map(_reset_and_step, MT50)))
    for task, r in results.items():
        shapes = {"corner2_image": (48, 48, 3), "wrist_image": (48, 48, 3), "agent_pos": (4,), "joint_pos": (7,)}
        assert r["shapes"] == shapes and r["agent_pos_in_parts"] and r["unit_quat"], task
        assert r["dtype"] == "uint8" and r["steps"] == 1
        assert r["image_up_z"] > 0, f"{task}: corner2 renders upside down"
        assert r["instruction"] == MT50[task][1]


def test_corner2_is_turned_upright_as_lerobot_turns_it():
    env = make_env(EnvConfig(task="reach-v3", cameras=("corner2",), image_size=32))
    try:
        env.reset(seed=1_000_000)
        import mujoco

        raw = mujoco.Renderer(env.model, 32, 32)
        raw.update_scene(env.data, camera="corner2")
        assert np.array_equal(env.render("corner2"), np.flip(raw.render(), (0, 1)))
        raw.close()
        with pytest.raises(ValueError, match="action must have shape \\(4,\\)"):
            env.step(np.zeros(7))
    finally:
        env.close()


@pytest.mark.parametrize(
    "task", ["reach-v3", "drawer-open-v3", "button-press-topdown-v3", "pick-place-v3", "door-open-v3"]
)
def test_the_scripted_expert_solves_fresh_seeds(task):
    env = make_env(EnvConfig(task=task, cameras=()))
    expert = ExpertPolicy(env)
    try:
        for seed in (1_000_000, 1_000_001):
            obs = env.reset(seed=seed)
            expert.reset()
            for _ in range(env.horizon):
                obs, _, terminated, truncated, _ = env.step(expert.select_action(obs))
                if terminated or truncated:
                    break
            assert env.success, f"{task} seed {seed}: the expert did not succeed"
    finally:
        env.close()


def test_same_seed_same_scene_and_another_seed_another():
    env = make_env(EnvConfig(task="pick-place-v3", cameras=()))
    try:
        first = env.reset(seed=1_000_000)["object_state"]
        assert np.array_equal(env.reset(seed=1_000_000)["object_state"], first)
        assert not np.array_equal(env.reset(seed=1_000_001)["object_state"], first)
    finally:
        env.close()


@pytest.mark.parametrize("task", ["reach-v3", "drawer-close-v3"])
def test_collect_validate_replay_is_exact(task, tmp_path, vla_cmd):
    out = tmp_path / f"{task}.hdf5"
    run = lambda *a: subprocess.run([*vla_cmd, *a], capture_output=True, text=True, timeout=600)  # noqa: E731
    collected = run(
        "collect", "--task", task, "--episodes", "2", "--cameras", "corner2", "--image-size", "32", "--out", str(out)
    )
    assert collected.returncode == 0, collected.stderr[-2000:]
    assert run("dataset", "validate", str(out)).returncode == 0
    with h5py.File(out) as f:
        assert f["data/demo_0/actions"].shape[1] == 4
        assert f["data/demo_0"].attrs["instruction"] == MT50[task][1]
    for mode in ("actions", "states"):
        replayed = run("replay", str(out), "--mode", mode)
        assert replayed.returncode == 0, replayed.stderr[-2000:]
        report = json.loads(replayed.stdout)
        assert report["success_reproduced"] == 2 and report["max_state_divergence"] == 0.0, report


def test_a_group_collects_trains_and_evaluates_as_4d_actions(tmp_path, vla_cmd):
    """Two tasks collected as a group (a file each, resumable), trained on the directory: the
    checkpoint says its actions are Meta-World's (4-d, 1 cm per step at 80 Hz, read off the env);
    Policy and `vla eval` on the group run it, per task and per difficulty group."""
    from vla_policy.action_space import ActionSpace
    from vla_policy.policy import Policy

    demos, run_dir = tmp_path / "mw", tmp_path / "run"
    run = lambda *a: subprocess.run([*vla_cmd, *a], capture_output=True, text=True, timeout=600)  # noqa: E731
    group = ["collect", "--task", "reach-v3,drawer-close-v3", "--episodes", "2", "--cameras", "corner2"]
    collected = run(*group, "--image-size", "32", "--out", str(demos))
    assert collected.returncode == 0, collected.stderr[-2000:]
    assert sorted(p.name for p in demos.iterdir()) == ["drawer-close-v3.hdf5", "reach-v3.hdf5"]
    again = json.loads(run(*group, "--image-size", "32", "--out", str(demos)).stdout)
    assert all(t.get("skipped") for t in again["tasks"].values())  # complete files are kept
    trained = run(
        "train", "--config", "tiny", f"train.dataset={demos}", f"train.out={run_dir}", "train.steps=2",
        "train.val_fraction=0", "model.action_dim=4", "model.proprio_keys=[agent_pos]", "model.vision.cameras=[corner2]",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = run_dir / "checkpoints" / "last"
    meta = json.loads((checkpoint / "meta.json").read_text())
    assert meta["env_args"]["env_kwargs"]["task"] == "drawer-close-v3,reach-v3"
    policy = Policy.from_checkpoint(checkpoint, device="cpu")
    assert policy.action_space.name == "ee_xyz_gripper" and policy.action_space.size == 4
    assert policy.action_space.scale[:3] == (0.01, 0.01, 0.01) and policy.action_space.dt == pytest.approx(0.0125)
    env = make_env(EnvConfig(task="reach-v3", cameras=("corner2",), image_size=32))
    try:
        obs = env.reset(seed=1_000_000)
        chunk = policy.predict_chunk(obs)
        assert chunk.actions.shape[1] == 4 and chunk.action_space == "ee_xyz_gripper"
        assert policy.select_action(obs).shape == (4,)
    finally:
        env.close()
    linear, angular, _ = ActionSpace.from_dict(policy.action_space.to_dict()).to_velocity(np.array([1.0, 0, 0, 1]))
    assert np.allclose(linear, [0.8, 0, 0]) and np.allclose(angular, 0)  # 1 cm per 12.5 ms step
    evaluated = run("eval", "--checkpoint", str(checkpoint), "--task", "reach-v3,drawer-close-v3", "--episodes", "1")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    suite = json.loads(evaluated.stdout)
    assert set(suite["per_task"]) == {"reach-v3", "drawer-close-v3"} and set(suite["per_group"]) == {"easy"}
    assert suite["episodes"] == 2 and 0.0 <= suite["group_average"]["rate"] <= 1.0
