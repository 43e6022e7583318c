"""What `vla eval --out DIR` leaves behind: report.json, videos of a few successes and of the
failures (up to a cap), and PNG plots (success per skill and instruction, action traces)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from vla_policy.atomic import write_text_atomic

ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


def write_report(
    report: dict,
    out: str | Path,
    media_dir: str | Path | None = None,
    failure_videos: int = 10,
    success_videos: int = 3,
) -> Path:
    """From `media_dir` (per-episode mp4 + npy written by the runner) keep the first
    `success_videos` successes and `failure_videos` failures in DIR/videos, plot, delete the rest,
    and write DIR/report.json last and atomically: it marks a finished evaluation."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_success(report, out / "success.png")
    if media_dir is not None and Path(media_dir).exists():
        _keep_media(report, Path(media_dir), out, failure_videos, success_videos)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    return out


def _keep_media(report: dict, media: Path, out: Path, failure_videos: int, success_videos: int) -> None:
    successes = [r for r in report["episodes"] if r["success"]]
    failures = [r for r in report["episodes"] if not r["success"]]
    videos = out / "videos"
    videos.mkdir(exist_ok=True)
    for r in successes[:success_videos] + failures[:failure_videos]:
        source = media / f"seed_{r['seed']}.mp4"
        if source.exists():
            shutil.copy(source, videos / f"{_label(r)}_seed_{r['seed']}.mp4")
    traces = {
        f"seed {r['seed']} ({_label(r)}): {r.get('instruction', '')}": np.load(media / f"seed_{r['seed']}.npy")
        for r in successes[:1] + failures[:1]
        if (media / f"seed_{r['seed']}.npy").exists()
    }
    if traces:
        plot_actions(traces, out / "actions.png")
    shutil.rmtree(media, ignore_errors=True)


def _label(record: dict) -> str:
    return "success" if record["success"] else "failure"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_success(report: dict, path: Path) -> None:
    """Success rate with Wilson 95% intervals per skill (left) and per word order (right; per
    instruction for a task without an instruction grammar)."""
    plt = _pyplot()
    if report.get("per_frame"):
        groups = [("skill", report["per_skill"]), ("word order", report["per_frame"])]
    else:
        groups = [("skill", report["per_skill"]), ("instruction", report["per_instruction"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 3]})
    for ax, (label, rates) in zip(axes, groups):
        names = list(rates)
        values = [rates[n]["rate"] for n in names]
        err = [
            [rates[n]["rate"] - rates[n]["wilson95"][0] for n in names],
            [rates[n]["wilson95"][1] - rates[n]["rate"] for n in names],
        ]
        ax.bar(range(len(names)), values, yerr=err, capsize=2, color="tab:green")
        ax.set_xticks(
            range(len(names)),
            [f"{n} (n={rates[n]['episodes']})" for n in names],
            rotation=60,
            ha="right",
            fontsize=8 if label == "skill" else 6,
        )
        ax.set_ylim(0, 1.05)
        ax.set_title(f"success per {label}")
    overall = report["overall"]
    fig.suptitle(
        f"{report['task']} ({report['instructions']} instructions): {overall['successes']}/"
        f"{overall['episodes']} = {overall['rate']:.0%}, 95% CI {overall['wilson95']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_actions(traces: dict[str, np.ndarray], path: Path) -> None:
    """One panel per episode: the 7 action dimensions over time."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(traces), 1, figsize=(10, 3 * len(traces)), squeeze=False)
    for ax, (title, actions) in zip(axes[:, 0], traces.items()):
        for i, name in enumerate(ACTION_NAMES[: actions.shape[1]]):
            ax.plot(actions[:, i], label=name, lw=1)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("control step")
        ax.set_ylim(-1.05, 1.05)
        ax.legend(fontsize=6, ncol=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
