"""robomimic-playable HDF5 from this project's datasets, for the tasks that are robosuite's own
environments (today: `lift`, robosuite's Lift).

robomimic rebuilds the environment from `env_args` (`type` 1 = robosuite, `env_name`, the kwargs
of `robosuite.make`) and restores `states` with `sim.set_state_from_flattened`, i.e. robosuite's
[time, qpos, qvel]; this project stores MuJoCo's whole integration state plus the gripper's
command memory. The export keeps the first 1 + nq + nv numbers of each state, writes each demo's
scene XML as `model_file` (what robomimic's `reset_to` loads), and recomputes the observations
with robosuite itself from every restored state, under robosuite's names (robot0_eef_pos,
robot0_eef_quat in x, y, z, w, object, agentview_image, robot0_eye_in_hand_image, ...), so a
robomimic playback from states renders what the file holds. Actions and rewards are copied.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_policy.data.hdf5_dataset import DatasetError, check_output, demo_names, env_args, open_dataset

ROBOSUITE_TYPE = 1  # robomimic's EnvType.ROBOSUITE_TYPE
ROBOSUITE_ENVS = {"lift": "Lift"}  # our task -> the robosuite environment it is
CAMERAS = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}  # our camera -> robosuite's


def robomimic_env_meta(args: dict, image_size: int, cameras: list[str]) -> dict:
    """robomimic's env metadata for a dataset of one of ROBOSUITE_ENVS."""
    from sim.tasks.scene import panda_controller_config

    task = args.get("env_kwargs", {}).get("task", args.get("env_name"))
    if task not in ROBOSUITE_ENVS:
        raise DatasetError(
            f"task {task!r} is a vla_stack scene robomimic cannot rebuild; the robomimic export supports "
            f"robosuite's own environments: {sorted(ROBOSUITE_ENVS)}"
        )
    kwargs = args.get("env_kwargs", {})
    return {
        "env_name": ROBOSUITE_ENVS[task],
        "type": ROBOSUITE_TYPE,
        "env_version": __import__("robosuite").__version__,
        "env_kwargs": {
            "robots": ["Panda"],
            "controller_configs": panda_controller_config(),
            "has_renderer": False,
            "has_offscreen_renderer": True,
            "use_camera_obs": bool(cameras),
            "camera_names": [CAMERAS[c] for c in cameras],
            "camera_heights": image_size,
            "camera_widths": image_size,
            "control_freq": int(kwargs.get("control_freq", 20)),
            "reward_shaping": False,
            "ignore_done": True,
            "hard_reset": False,
        },
    }


def export_robomimic(source: str | Path, out: str | Path, overwrite: bool = False) -> dict:
    """Write `source` (a `vla collect` file of a robosuite task) as a robomimic dataset `out`."""
    import h5py
    import mujoco
    import robosuite

    out = check_output(out, overwrite)
    with open_dataset(source) as f:
        names = demo_names(f)
        if not names:
            raise DatasetError(f"{source}: no demos to export")
        args = env_args(f)
        first = f["data"][names[0]]["obs"]
        cameras = [c for c in CAMERAS if f"{c}_image" in first]
        size = int(first[f"{cameras[0]}_image"].shape[1]) if cameras else 84
        meta = robomimic_env_meta(args, size, cameras)
        os.environ.setdefault("MUJOCO_GL", "egl")
        env = robosuite.make(meta["env_name"], **meta["env_kwargs"])
        model = env.sim.model._model
        keep = 1 + model.nq + model.nv  # [time, qpos, qvel]
        if (
            f["data"][names[0]]["states"].shape[1]
            != mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_INTEGRATION) + 3
        ):
            raise DatasetError(f"{source}: its states are not this robosuite {meta['env_name']}'s (other layout)")
        tmp = out.with_name(out.name + ".tmp")
        total = 0
        try:
            with h5py.File(tmp, "w") as dst:
                data = dst.create_group("data")
                env.reset()
                xml = env.sim.model.get_xml()  # the scene every demo's states belong to
                # Loaded the way robomimic's reset_to loads a demo's model_file, so what is rendered
                # here is what robomimic renders.
                env.reset_from_xml_string(env.edit_model_xml(xml))
                env.sim.reset()
                for i, name in enumerate(tqdm(names, desc=f"export {Path(source).name}", unit="demo")):
                    group = f["data"][name]
                    states = group["states"][()][:, :keep]
                    demo = data.create_group(f"demo_{i}")
                    obs = _observations(env, states)
                    for key, value in obs.items():
                        demo.create_dataset(f"obs/{key}", data=value)
                        demo.create_dataset(f"next_obs/{key}", data=np.concatenate([value[1:], value[-1:]]))
                    demo.create_dataset("states", data=states)
                    demo.create_dataset("actions", data=group["actions"][()])
                    demo.create_dataset("rewards", data=group["rewards"][()])
                    demo.create_dataset("dones", data=group["dones"][()])
                    demo.attrs.update(
                        num_samples=len(states), model_file=xml, instruction=str(group.attrs.get("instruction", ""))
                    )
                    total += len(states)
                data.attrs.update(total=total, env_args=json.dumps(meta))
                mask = dst.create_group("mask")  # robomimic's filter keys: every demo is a training demo
                mask.create_dataset("train", data=np.array([f"demo_{i}" for i in range(len(names))], dtype="S"))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
            env.close()
    return {"source": str(source), "out": str(out), "demos": len(names), "steps": total, "env_name": meta["env_name"]}


def _observations(env, states: np.ndarray) -> dict[str, np.ndarray]:
    """robosuite's observations at each restored state (T, ...), images upright as robomimic stores them."""
    per_step: dict[str, list] = {}
    for state in states:
        env.sim.set_state_from_flattened(state)
        env.sim.forward()
        for key, value in env._get_observations(force_update=True).items():
            if key.endswith("_image"):
                value = value[::-1]  # robosuite renders bottom-up (OpenGL); robomimic flips them upright
            per_step.setdefault("object" if key == "object-state" else key, []).append(np.array(value))
    return {key: np.stack(values) for key, values in per_step.items()}
