"""Evaluation runner and its statistics."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from sim.env import EnvConfig
from sim.tasks import get_task
from vla_policy.eval.metrics import paired_comparison, paired_reports, wilson_interval
from vla_policy.eval.report import write_report
from vla_policy.eval.runner import POLICIES, evaluate, register_policy, skill_average

GRAMMAR = get_task("tabletop").grammar


@pytest.mark.parametrize(
    "successes, trials, low, high",
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (95, 100, 0.8883, 0.9785)],
)
def test_wilson_known_answers(successes, trials, low, high):
    lo, hi = wilson_interval(successes, trials)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def _outcomes(pattern: str) -> dict[str, bool]:
    return {str(seed): c == "1" for seed, c in enumerate(pattern)}


def test_paired_comparison_counts_discordant_seeds_and_gives_exact_mcnemar():
    # 24 seeds only the reference solved, none the other way: p = 2 / 2**24.
    c = paired_comparison(_outcomes("1" * 24 + "0" * 36), _outcomes("0" * 60))
    assert (c["episodes"], c["won"], c["lost"], c["difference"]) == (60, 0, 24, -24)
    assert c["p_mcnemar"] == pytest.approx(2 / 2**24)
    # 5 won, 3 lost, 2 solved by both: p = 2 * (1 + 8 + 28 + 56) / 256 = 0.7266, a difference chance gives.
    c = paired_comparison(_outcomes("1110000011"), _outcomes("0001111111"))
    assert (c["won"], c["lost"], c["difference"]) == (5, 3, 2) and c["p_mcnemar"] == pytest.approx(93 / 128)
    # Only seeds both were run on count; identical outcomes give p = 1.
    assert paired_comparison(_outcomes("10"), {"1": False, "9": True}) == {
        "episodes": 1,
        "won": 0,
        "lost": 0,
        "difference": 0,
        "p_mcnemar": 1.0,
    }


def _report(outcomes: str, skills: str, first_seed: int = 0) -> dict:
    """A report as `vla eval` writes it: seeds from `first_seed`, skill p(ick) or s(tack) per episode."""
    names = {"p": "pick", "s": "stack"}
    episodes = [
        {"seed": first_seed + i, "success": c == "1", "skill": names[k]}
        for i, (c, k) in enumerate(zip(outcomes, skills))
    ]
    per_skill = {n: [e["success"] for e in episodes if e["skill"] == n] for n in sorted(set(names[k] for k in skills))}
    rates = [sum(v) / len(v) for v in per_skill.values()]
    return {"episodes": episodes, "skill_average": {"rate": sum(rates) / len(rates)}}


def test_paired_reports_say_won_and_lost_overall_and_per_skill():
    train = _report("11110011", "ppppssss")  # pick 4/4, stack 2/4: skill average 0.75
    heldout = _report("10110110", "ppppssss")  # pick 3/4 (lost seed 1), stack 2/4 (won 5, lost 7)
    c = paired_reports(train, heldout)
    assert (c["episodes"], c["won"], c["lost"], c["unpaired_seeds"]) == (8, 1, 2, 0)
    assert (c["per_skill"]["pick"]["won"], c["per_skill"]["pick"]["lost"]) == (0, 1)
    assert (c["per_skill"]["stack"]["won"], c["per_skill"]["stack"]["lost"]) == (1, 1)
    assert c["skill_average_ratio"] == pytest.approx(0.625 / 0.75)
    # Other seeds are other scenes: only the shared ones pair, the rest are counted.
    shifted = paired_reports(train, _report("1111", "pppp", first_seed=6))
    assert (shifted["episodes"], shifted["unpaired_seeds"]) == (2, 8)
    with pytest.raises(ValueError, match="share no episode seeds"):
        paired_reports(train, _report("1", "p", first_seed=100))


def test_skill_average_counts_each_skill_once():
    per_skill = {
        "pick": {"rate": 1.0, "episodes": 56},
        "push": {"rate": 0.9, "episodes": 100},
        "stack": {"rate": 0.5, "episodes": 144},
    }
    assert skill_average(per_skill) == {"rate": pytest.approx(0.8), "skills": 3, "min_episodes": 56}
    assert skill_average({}) == {"rate": 0.0, "skills": 0, "min_episodes": 0}


def test_expert_through_the_runner():
    report = evaluate(EnvConfig(task="pick", cameras=()), {"kind": "expert"}, episodes=2, seed=1_000_000)
    assert report["overall"]["successes"] == 2
    assert report["named_object"]["rate"] == 1.0
    assert [r["seed"] for r in report["episodes"]] == [1_000_000, 1_000_001]
    assert [order.split(":")[0] for order in report["per_frame"]] == ["train pick"] * len(report["per_frame"])
    assert all(r["inference_ms_p50"] is not None for r in report["episodes"])
    assert all(
        0 <= r["inference_ms_p50"] <= r["inference_ms_max"] and r["inference_ms_mean"] <= r["inference_ms_max"]
        for r in report["episodes"]
    )


def test_a_grammar_task_reports_success_per_word_order():
    config = EnvConfig(task="tabletop", cameras=(), instructions="heldout")
    report = evaluate(config, {"kind": "expert"}, episodes=3, seed=1_000_000)
    frames = [GRAMMAR.frame(r["instruction"]) for r in report["episodes"]]
    assert all(f.startswith("heldout ") for f in frames)
    assert Counter(frames) == {f: rates["episodes"] for f, rates in report["per_frame"].items()}
    assert sum(r["successes"] for r in report["per_frame"].values()) == report["overall"]["successes"]


def test_a_report_write_killed_before_its_rename_leaves_the_previous_report(tmp_path, monkeypatch):
    """report.json marks a finished evaluation (`vla ablate` skips re-evaluating when it exists):
    a kill while it is written must leave the old report or the new one, whole."""
    report = evaluate(EnvConfig(task="pick", cameras=()), {"kind": "expert"}, episodes=1, seed=1_000_000)
    write_report(report, tmp_path)
    before = (tmp_path / "report.json").read_text()
    changed = {**report, "overall": {**report["overall"], "successes": 0}}

    def killed(*args):
        raise SystemExit("killed before the rename")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(SystemExit):
        write_report(changed, tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "report.json").read_text() == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nothing left aside
    write_report(changed, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["overall"]["successes"] == 0


def test_failing_policy_is_reported_not_lost():
    @register_policy("broken")
    def _broken(env):
        class Broken:
            def reset(self):
                pass

            def select_action(self, obs):
                raise RuntimeError("model exploded")

        return Broken()

    try:
        report = evaluate(EnvConfig(task="lift", cameras=()), {"kind": "broken"}, episodes=2)
    finally:
        POLICIES.pop("broken")
    assert report["errors"] == 2 and report["overall"]["successes"] == 0
    assert "RuntimeError: model exploded" in report["episodes"][0]["error"]


def test_unknown_policy_kind():
    with pytest.raises(ValueError, match="unknown policy kind 'expret'.*did you mean 'expert'"):
        evaluate(EnvConfig(task="lift", cameras=()), {"kind": "expret"}, episodes=1)


def test_trained_checkpoint_through_the_runner(tmp_path):
    """A (barely) trained checkpoint runs closed-loop in the env it was trained for."""
    from vla_policy.config import load_config
    from vla_policy.data.collect import collect
    from vla_policy.eval.runner import checkpoint_env_config
    from vla_policy.train.trainer import Trainer

    demos = tmp_path / "lift.hdf5"
    collect("lift", 2, demos, config=EnvConfig(task="lift", image_size=32))
    config = load_config(
        "tiny", [f"train.dataset={demos}", f"train.out={tmp_path / 'run'}", "train.steps=2", "train.val_fraction=0"]
    )
    Trainer(config).train()
    ckpt = str(tmp_path / "run" / "checkpoints" / "last")
    env_config = checkpoint_env_config(ckpt, "lift", "train")
    assert env_config.image_size == 32 and env_config.cameras == ("agentview", "wrist")
    report = evaluate(env_config, {"kind": "checkpoint", "path": ckpt}, episodes=1, seed=1_000_000)
    episode = report["episodes"][0]
    # Two training steps cannot lift a cube: the episode runs to the task's horizon and fails,
    # and the report counts it so.
    from sim.tasks import get_task

    assert episode["error"] is None and episode["seed"] == 1_000_000
    assert episode["steps"] == get_task("lift").horizon and episode["success"] is False
    assert report["overall"]["episodes"] == 1 and report["overall"]["successes"] == 0


def test_crashed_worker_fails_its_episode_and_the_run_completes():
    spec = {"kind": "tests.crash_policy:make", "crash_seed": 1_000_001}
    report = evaluate(EnvConfig(task="pick", cameras=()), spec, episodes=4, seed=1_000_000, workers=2)
    by_seed = {r["seed"]: r for r in report["episodes"]}
    assert sorted(by_seed) == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    assert by_seed[1_000_001]["error"].startswith("WorkerCrashed") and not by_seed[1_000_001]["success"]
    assert all(by_seed[s]["success"] and by_seed[s]["error"] is None for s in (1_000_000, 1_000_002, 1_000_003))
    assert report["errors"] == 1


def test_eval_cli_writes_report_videos_and_plots(tmp_path, vla_cmd):
    import json
    import subprocess

    out = tmp_path / "eval"
    subprocess.run(
        [
            *vla_cmd,
            "eval",
            "--task",
            "pick",
            "--episodes",
            "2",
            "--workers",
            "2",
            "--out",
            str(out),
            "--cameras",
            "agentview,wrist",
        ],
        check=True,
        capture_output=True,
    )
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["successes"] == 2 and report["workers"] == 2
    assert sorted(p.name for p in (out / "videos").iterdir()) == [
        "success_seed_1000000.mp4",
        "success_seed_1000001.mp4",
    ]
    assert (out / "success.png").stat().st_size > 0 and (out / "actions.png").stat().st_size > 0
    assert not (out / ".media").exists()


def test_eval_cli_pairs_its_report_with_another_on_the_same_seeds(tmp_path, vla_cmd):
    import subprocess

    reference = tmp_path / "reference.json"  # the second seed failed there
    reference.write_text(json.dumps(_report("10", "pp", first_seed=1_000_000)))
    out = tmp_path / "eval"
    args = ["eval", "--task", "pick", "--episodes", "2", "--paired-with", str(reference), "--out", str(out)]
    subprocess.run([*vla_cmd, *args, "--videos", "0"], check=True, capture_output=True)
    paired = json.loads((out / "report.json").read_text())["paired"]
    assert (paired["reference"], paired["episodes"], paired["won"], paired["lost"]) == (str(reference), 2, 1, 0)
    assert paired["skill_average_ratio"] == pytest.approx(2.0)


def test_reruns_are_exact(tmp_path):
    """The same checkpoint, task and seed give the same actions and outcome, run after run."""
    import dataclasses

    import numpy as np

    from vla_policy.config import load_config
    from vla_policy.data.collect import collect
    from vla_policy.eval.runner import checkpoint_env_config
    from vla_policy.train.trainer import Trainer

    demos = tmp_path / "pick.hdf5"
    collect("pick", 2, demos, config=EnvConfig(task="pick", image_size=32))
    Trainer(
        load_config(
            "tiny", [f"train.dataset={demos}", f"train.out={tmp_path / 'run'}", "train.steps=2", "train.val_fraction=0"]
        )
    ).train()
    ckpt = str(tmp_path / "run" / "checkpoints" / "last")
    config = dataclasses.replace(checkpoint_env_config(ckpt, "pick", "train"), horizon=60)
    runs = []
    for i in range(2):
        media = tmp_path / f"media{i}"
        media.mkdir()
        report = evaluate(
            config, {"kind": "checkpoint", "path": ckpt}, episodes=2, seed=5_000_000, workers=2, media_dir=media
        )
        runs.append(
            (
                [(r["success"], r["steps"], r["instruction"]) for r in report["episodes"]],
                [np.load(media / f"seed_{s}.npy") for s in (5_000_000, 5_000_001)],
            )
        )
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        assert np.array_equal(a, b)


def test_suite_summary_averages_the_difficulty_groups_as_smolvla_reports():
    from vla_policy.eval.metrics import rate_summary
    from vla_policy.eval.suite import suite_summary

    reports = {t: {"overall": rate_summary(k, 10)} for t, k in {"a": 10, "b": 6, "c": 0, "d": 5}.items()}
    summary = suite_summary(reports, {"a": "easy", "b": "easy", "c": "hard", "d": "very_hard"})
    assert summary["per_group"]["easy"]["rate"] == pytest.approx(0.8)  # the mean of its tasks
    assert summary["group_average"]["rate"] == pytest.approx((0.8 + 0.0 + 0.5) / 3)  # each group once
    assert summary["task_average"] == pytest.approx(21 / 40)
    low, high = summary["group_average"]["normal95"]
    assert low < summary["group_average"]["rate"] < high
