"""Every task's env: observation contract, determinism, exact state restore, action checks."""

from __future__ import annotations

import numpy as np
import pytest

from sim.env import EnvConfig, SimEnv
from sim.tasks import TASKS

SIZE = 48  # small images keep the suite fast; the contract is size-independent
LOW_DIM = {"joint_pos": (7,), "joint_vel": (7,), "gripper_qpos": (2,), "eef_pos": (3,), "eef_quat": (4,)}


@pytest.fixture(scope="module", params=sorted(n for n, t in TASKS.items() if t.env_type == "robosuite"))
def env(request):
    with SimEnv(EnvConfig(task=request.param, image_size=SIZE)) as env:
        yield env


def test_observation_keys_shapes_dtypes(env):
    obs = env.reset(seed=0)
    for cam in ("agentview", "wrist"):
        image = obs[f"{cam}_image"]
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        assert image.std() > 5, f"{cam} image looks blank"
    for key, shape in LOW_DIM.items():
        assert obs[key].shape == shape and obs[key].dtype == np.float64, key
    assert np.isclose(np.linalg.norm(obs["eef_quat"]), 1.0)
    assert obs["object_state"].shape == (7 * len(env.scene.object_names),)
    assert tuple(env.scene.object_names) == env.task.object_names  # what datasets index object_state by
    assert isinstance(obs["instruction"], str) and env.task.parse(obs["instruction"]).instruction == obs["instruction"]


def test_seeded_reset_is_deterministic(env):
    a = env.reset(seed=7)
    b = env.reset(seed=7)
    c = env.reset(seed=8)
    assert np.array_equal(a["object_state"], b["object_state"])
    assert np.array_equal(a["agentview_image"], b["agentview_image"])
    assert a["instruction"] == b["instruction"]
    assert not np.array_equal(a["object_state"], c["object_state"])


def test_get_set_state_round_trip(env):
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(rng.uniform(-1, 1, 7))
    saved = env.get_state()
    actions = rng.uniform(-1, 1, (8, 7))
    first = [env.step(a)[0] for a in actions]
    env.set_state(saved)
    assert np.array_equal(env.get_state(), saved)
    second = [env.step(a)[0] for a in actions]
    for o1, o2 in zip(first, second):
        assert np.array_equal(o1["joint_pos"], o2["joint_pos"])
        assert np.array_equal(o1["object_state"], o2["object_state"])
        assert np.array_equal(o1["agentview_image"], o2["agentview_image"])


def test_set_state_rejects_wrong_shape(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="state has shape"):
        env.set_state(np.zeros(3))


def test_actions_validated_and_clipped(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step([0, 0, np.nan, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step([0, 0, 0, np.inf, 0, 0, 0])
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6))
    _, _, _, _, info = env.step([2.0, 0, 0, 0, 0, 0, -1])
    assert info["clipped_actions"] == 1
    _, _, _, _, info = env.step(np.zeros(7))
    assert info["clipped_actions"] == 1


def _project(env: SimEnv, camera: str, point: np.ndarray, size: int) -> tuple[int, int]:
    """Row/column of a world point in an upright image (MuJoCo cameras look along -z, y up)."""
    cam = env.model.camera(camera)
    pos, rot = env.data.cam_xpos[cam.id], env.data.cam_xmat[cam.id].reshape(3, 3)
    x, y, z = rot.T @ (point - pos)
    focal = (size / 2) / np.tan(np.deg2rad(env.model.cam_fovy[cam.id]) / 2)
    return int(round(size / 2 - focal * y / -z)), int(round(size / 2 + focal * x / -z))


def test_images_are_upright():
    """The red cube appears where the camera geometry says, which a flipped image would miss."""
    with SimEnv(EnvConfig(task="pick", cameras=("agentview",), image_size=96)) as env:
        for seed in range(3):
            obs = env.reset(seed=seed)
            row, col = _project(env, "agentview", env.object_position("red"), 96)
            r, g, b = obs["agentview_image"][row, col].astype(int)
            assert r > 60 and r > 2 * g and r > 2 * b, (seed, row, col, (r, g, b))


def test_unknown_camera_and_quality_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown camera 'top'.*valid cameras"):
        SimEnv(EnvConfig(task="lift", cameras=("top",)))
    with pytest.raises(ValueError, match="unknown render_quality"):
        SimEnv(EnvConfig(task="lift", render_quality="ultra"))
    with pytest.raises(ValueError, match="unknown task"):
        SimEnv(EnvConfig(task="lfit"))


def test_gymnasium_registration():
    import gymnasium

    import sim  # noqa: F401  (registers vla_stack/* ids)

    env = gymnasium.make("vla_stack/Push-v0", cameras=("agentview",), image_size=32)
    try:
        obs, info = env.reset(seed=5, options={"instruction": "push the blue cube to the right"})
        assert info["goal"] == {
            "skill": "push",
            "instruction": "push the blue cube to the right",
            "target": "blue",
            "direction": "right",
        }
        assert env.observation_space.contains(obs)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and reward == 0.0 and not terminated
    finally:
        env.close()


def test_the_panda_action_space_matches_the_live_controller(env):
    """vla_policy.action_space.panda_osc states robosuite's controller limits: check them here."""
    from vla_policy.action_space import panda_osc

    arm = env.robot.part_controllers["right"]
    space = panda_osc(1.0 / env.config.control_freq)
    assert np.allclose(arm.output_max, space.scale[:6]) and np.allclose(arm.output_min, -np.asarray(space.scale[:6]))
    assert (
        arm.input_ref_frame == "base" and space.frame == "robot0_base" == env.robot.robot_model.naming_prefix + "base"
    )
    low, high = env.model.jnt_range[env.model.joint(env.gripper.joints[0]).id]
    assert np.isclose(high, space.gripper_open) and np.isclose(low, space.gripper_closed)


def test_the_gripper_closes_as_fast_in_seconds_at_any_step_rate():
    """robosuite moves the gripper a fixed amount per policy step; SimEnv keeps its speed per second."""
    seconds_to_close = {}
    for hz in (10, 20):
        env = SimEnv(EnvConfig(task="lift", cameras=(), control_freq=hz))
        env.reset(seed=0)
        steps = 0
        while env.gripper.current_action[-1] < 1.0:
            env.step(np.r_[np.zeros(6), 1.0])
            steps += 1
        seconds_to_close[hz] = steps / hz
        env.close()
    assert seconds_to_close[10] == pytest.approx(seconds_to_close[20], abs=0.1)
    assert type(SimEnv(EnvConfig(task="lift", cameras=())).gripper).__name__ == "PandaGripper"  # 20 Hz: robosuite's own
