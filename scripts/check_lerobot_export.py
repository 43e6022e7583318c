"""Load a `vla dataset export --format lerobot` directory with LeRobot's own loader and compare
it with the HDF5 file it came from.

Runs in a separate venv, since lerobot-dataset imports torchvision, which does not load beside
this project's CPU torch build (x86_64, Python 3.11)::

    python3 -m venv /tmp/lerobot-venv
    /tmp/lerobot-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 lerobot-dataset==0.4.4 'packaging<26' \
        h5py torchcodec
    apt-get install ffmpeg   # torchcodec decodes with the system's FFmpeg libraries
    /tmp/lerobot-venv/bin/python scripts/check_lerobot_export.py data/lift.hdf5 runs/lift_lerobot

Prints one JSON line: frames and episodes as LeRobot counts them, the largest action and state
difference, and the worst camera PSNR over the frames it reads. Exits 1 on any mismatch.
"""

from __future__ import annotations

import json
import sys

import h5py
import numpy as np
from ledataset.datasets.lerobot_dataset import LeRobotDataset

BACKEND = "torchcodec"  # lerobot-dataset 0.4.4's pyav path calls torchvision.io.VideoReader, gone in torchvision 0.29


def main(source: str, exported: str) -> int:
    dataset = LeRobotDataset("local/vla_stack_export", root=exported, video_backend=BACKEND)
    result = {"frames": len(dataset), "episodes": dataset.num_episodes, "fps": dataset.fps}
    cameras = [k for k in dataset.meta.video_keys]
    worst_psnr, action_err, state_err, tasks_ok = np.inf, 0.0, 0.0, True
    with h5py.File(source) as f:
        names = sorted(f["data"], key=lambda n: int(n.split("_")[1]))
        result["hdf5_frames"] = int(sum(f["data"][n]["actions"].shape[0] for n in names))
        for e, name in enumerate(names):
            group = f["data"][name]
            start = int(dataset.meta.episodes[e]["dataset_from_index"])
            length = group["actions"].shape[0]
            for t in sorted({0, length // 2, length - 1}):
                item = dataset[start + t]
                action_err = max(action_err, float(np.abs(item["action"].numpy() - group["actions"][t]).max()))
                joints = group["obs"]["joint_pos"][t]
                state_err = max(state_err, float(np.abs(item["observation.joint_pos"].numpy() - joints).max()))
                tasks_ok &= item["task"] == str(group.attrs["instruction"])
                for key in cameras:
                    frame = (item[key].numpy().transpose(1, 2, 0) * 255).round()  # (C, H, W) in [0, 1]
                    truth = group["obs"][key.removeprefix("observation.images.") + "_image"][t].astype(float)
                    mse = max(((frame - truth) ** 2).mean(), 1e-10)
                    worst_psnr = min(worst_psnr, 10 * np.log10(255**2 / mse))
    result.update(max_action_error=action_err, max_joint_error=state_err, tasks_match=bool(tasks_ok))
    result["worst_psnr_db"] = round(float(worst_psnr), 2)
    print(json.dumps(result))
    ok = result["frames"] == result["hdf5_frames"] and action_err < 1e-6 and state_err < 1e-6 and tasks_ok
    return 0 if ok and worst_psnr >= 35 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
