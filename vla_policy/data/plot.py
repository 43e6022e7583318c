"""`vla dataset info F --plot out.png`: one picture of a dataset, to look at before training on it:
episode lengths, each action dimension's distribution, how often each instruction occurs, and the
first and last frame of a few episodes for every camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vla_policy.data.hdf5_dataset import DatasetError, demo_names, open_dataset

ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
SHEET_EPISODES = 6  # episodes on the contact sheet
TOP_INSTRUCTIONS = 20


def plot_dataset(path: str | Path, out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open_dataset(path) as f:
        names = demo_names(f)
        if not names:
            raise DatasetError(f"{path}: no demos to plot")
        groups = [f["data"][n] for n in names]
        lengths = np.array([g["actions"].shape[0] for g in groups])
        actions = np.concatenate([g["actions"][()] for g in groups])  # (N, A)
        counts: dict[str, int] = {}
        for g in groups:
            text = str(g.attrs.get("instruction", ""))
            counts[text] = counts.get(text, 0) + 1
        cameras = sorted(k for k, v in groups[0]["obs"].items() if v.dtype == np.uint8 and v.ndim == 4)
        shown = groups[:SHEET_EPISODES]
        sheet = {c: [(g["obs"][c][0], g["obs"][c][-1]) for g in shown] for c in cameras}  # (H, W, 3) pairs
        successes = sum(bool(g.attrs.get("success", False)) for g in groups)

    dims = actions.shape[1]
    fig = plt.figure(figsize=(16, 5.5 + 1.5 * len(cameras)), constrained_layout=True)
    grid = fig.add_gridspec(2 + len(cameras), max(dims, SHEET_EPISODES), height_ratios=[3, 2.2] + [1.4] * len(cameras))
    top = fig.add_subplot(grid[0, : grid.ncols // 2])
    top.hist(lengths, bins=min(40, max(5, len(set(lengths.tolist())))), color="tab:blue")
    top.set(
        title=f"{len(names)} episodes, {lengths.sum():,} steps, {successes} successful",
        xlabel="episode length (steps)",
        ylabel="episodes",
    )
    words = fig.add_subplot(grid[0, grid.ncols // 2 :])
    common = sorted(counts.items(), key=lambda kv: -kv[1])[:TOP_INSTRUCTIONS]
    words.barh(range(len(common)), [c for _, c in common], color="tab:green")
    words.set_yticks(range(len(common)), [t[:60] for t, _ in common], fontsize=7)
    words.invert_yaxis()
    words.set(title=f"{len(counts)} instructions (the {len(common)} most common)", xlabel="episodes")
    for d in range(dims):
        ax = fig.add_subplot(grid[1, d])
        ax.hist(actions[:, d], bins=50, color="tab:orange")
        ax.set(title=ACTION_NAMES[d] if d < len(ACTION_NAMES) else f"a{d}", yticks=[])
        ax.tick_params(labelsize=7)
    fig.text(0.01, 0.01, f"{path}", fontsize=7)
    for row, camera in enumerate(cameras):
        for i, (first, last) in enumerate(sheet[camera]):
            ax = fig.add_subplot(grid[2 + row, i])
            ax.imshow(np.concatenate([first, last], axis=1))
            ax.set_axis_off()
            ax.set_title(f"{camera.removesuffix('_image')} ep {i}: first | last", fontsize=7)
    out = Path(out)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
