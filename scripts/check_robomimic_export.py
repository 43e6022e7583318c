"""Check a `vla dataset export --format robomimic` file with robomimic 0.3.0 itself: its dataset
info, playback from states (the observations robomimic computes equal the stored ones), playback
with actions (robomimic's playback_dataset runs; the task's success at the end of every demo, and
how far the states it reaches drift from the stored ones), and a short BC training run.

Runs in a separate venv (robomimic wants torchvision, which does not load beside this project's
CPU torch build), with a stub `mujoco_py` (robomimic imports it only for MujocoException)::

    python3 -m venv /tmp/robomimic-venv
    /tmp/robomimic-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 robosuite==1.5.2 mujoco==3.8.1 robomimic==0.3.0
    mkdir -p /tmp/stubs/mujoco_py
    echo 'class MujocoException(Exception): pass' > /tmp/stubs/mujoco_py/__init__.py
    echo 'from mujoco_py import MujocoException' > /tmp/stubs/mujoco_py/builder.py
    PYTHONPATH=/tmp/stubs MUJOCO_GL=egl /tmp/robomimic-venv/bin/python scripts/check_robomimic_export.py lift_robomimic.hdf5

Prints one JSON line; exits 1 when any check fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import h5py
import numpy as np


def main(path: str) -> int:
    import robomimic.utils.env_utils as EnvUtils
    import robomimic.utils.file_utils as FileUtils
    import robomimic.utils.obs_utils as ObsUtils

    result = {}
    info = subprocess.run(
        [sys.executable, "-m", "robomimic.scripts.get_dataset_info", "--dataset", path], capture_output=True, text=True
    )
    result["get_dataset_info"] = info.returncode == 0
    playback = subprocess.run(
        [
            sys.executable,
            "-m",
            "robomimic.scripts.playback_dataset",
            "--dataset",
            path,
            "--use-actions",
            "--n",
            "1",
            "--video_path",
            tempfile.mktemp(suffix=".mp4"),
        ],
        capture_output=True,
        text=True,
    )
    result["playback_dataset_use_actions_runs"] = playback.returncode == 0
    result["playback_divergence_warnings"] = playback.stdout.count("diverged")

    env_meta = FileUtils.get_env_metadata_from_dataset(path)
    with h5py.File(path) as f:
        demos = sorted(f["data"], key=lambda n: int(n.split("_")[1]))
        images = [k for k in f[f"data/{demos[0]}/obs"] if k.endswith("_image")]
        ObsUtils.initialize_obs_utils_with_obs_specs(
            {"obs": {"low_dim": ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"], "rgb": images}}
        )
        env = EnvUtils.create_env_from_metadata(env_meta, render_offscreen=True, use_image_obs=bool(images))
        image_equal, state_err, successes = True, 0.0, 0
        for name in demos:
            demo = f[f"data/{name}"]
            states, actions = demo["states"][()], demo["actions"][()]
            env.reset()
            env.reset_to({"model": demo.attrs["model_file"], "states": states[0]})
            for t in range(len(states)):  # playback from states: robomimic's observation is the stored one
                obs = env.reset_to({"states": states[t]})
                for key in images:
                    got = (np.transpose(obs[key], (1, 2, 0)) * 255).round().astype(np.uint8)  # (C, H, W) in [0, 1]
                    image_equal &= bool(np.array_equal(got, demo[f"obs/{key}"][t]))
            env.reset_to({"states": states[0]})
            for t, action in enumerate(actions):  # playback with actions
                env.step(action)
                if t + 1 < len(states):
                    state_err = max(state_err, float(np.linalg.norm(env.get_state()["states"] - states[t + 1])))
            successes += bool(env.is_success()["task"])
    result.update(demos=len(demos), images_reproduced=image_equal, max_state_divergence=state_err, successes=successes)
    result["train"] = _train(path)
    print(json.dumps(result))
    ok = all(result[k] for k in ("get_dataset_info", "playback_dataset_use_actions_runs", "images_reproduced", "train"))
    return 0 if ok and successes == len(demos) else 1


def _train(path: str) -> bool:
    """Two short epochs of robomimic's BC on the low-dimensional observations."""
    from robomimic.config import config_factory
    from robomimic.scripts.train import train

    config = config_factory("bc")
    with config.values_unlocked():
        config.train.data = path
        config.train.output_dir = tempfile.mkdtemp()
        config.train.num_epochs = 2
        config.experiment.epoch_every_n_steps = 10
        config.experiment.validate = False
        config.experiment.rollout.enabled = False
        config.experiment.save.enabled = False
        config.experiment.logging.log_tb = False
        config.train.batch_size = 16
        config.observation.modalities.obs.low_dim = [
            "robot0_eef_pos",
            "robot0_eef_quat",
            "robot0_gripper_qpos",
            "object",
        ]
        config.observation.modalities.obs.rgb = []
    try:
        train(config, device="cpu")
        return True
    except Exception as error:  # noqa: BLE001 - the check reports any failure
        print(f"robomimic train failed: {error!r}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
