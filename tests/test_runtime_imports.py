"""The run-time path (Policy, as policy_node and `vla serve` load it) imports only what running a
policy needs: no dataset files (h5py), no progress bars (tqdm), no simulator (sim, robosuite,
mujoco), so a robot computer needs none of them installed."""

from __future__ import annotations

import subprocess
import sys

TRAINING_ONLY = ("h5py", "tqdm", "sim", "robosuite", "mujoco", "gymnasium", "matplotlib", "imageio")

SCRIPT = """
import sys

class Unavailable:
    '''Makes these top-level modules fail to import, as on a machine without them.'''
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this robot")
        return None

BLOCKED = set(sys.argv[2].split(","))
sys.meta_path.insert(0, Unavailable())

import numpy as np
from vla_policy.policy import Policy

policy = Policy.from_checkpoint(sys.argv[1], device="cpu")
size = policy.config.model.vision.image_size
obs = {f"{c}_image": np.zeros((size, size, 3), np.uint8) for c in policy.config.model.vision.cameras}
obs.update(joint_pos=np.zeros(7), gripper_qpos=np.zeros(2), eef_pos=np.zeros(3), eef_quat=np.array([1.0, 0, 0, 0]))
obs["instruction"] = "lift the cube"
chunk, future = policy.predict_chunk_and_future(obs)
action = policy.select_action(obs)
assert future is not None and np.isfinite(policy.surprise(future, obs))
assert np.isfinite(chunk.actions).all() and action.shape == (7,)
print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""


def test_a_policy_loads_and_acts_without_the_training_and_simulation_packages(tiny_checkpoint):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_checkpoint), ",".join(TRAINING_ONLY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
