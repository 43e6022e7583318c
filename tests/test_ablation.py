"""`vla ablate`: a matrix of variants trained, evaluated and tabulated."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from sim.env import EnvConfig
from vla_policy.data.collect import collect
from vla_policy.eval.ablation import Matrix, compare_to_reference, eval_all, main_effects, markdown, table


def _matrix(tmp_path, demos) -> str:
    path = tmp_path / "matrix.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset": str(demos),
                "task": "pick",
                "out": str(tmp_path / "ablation"),
                "base": "tiny",
                "train": {"steps": 2, "val_fraction": 0, "eval_every": 2},
                "eval": {"episodes": 1, "seed": 7_000_000, "workers": 1, "horizon": 30},
                "axes": {"model.head": ["flow", "discrete"]},
                "baselines": {"blind": {"model.architecture": "conv_bc"}},
            }
        )
    )
    return str(path)


def test_matrix_expands_axes_and_baselines(tmp_path):
    m = Matrix.load(_matrix(tmp_path, "demos.hdf5"))
    assert [v.name for v in m.variants] == ["head-flow", "head-discrete", "blind"]
    assert [v.baseline for v in m.variants] == [False, False, True]
    assert "model.head=discrete" in m.train_overrides(m.variants[1])
    assert [v.name for v in m.select(["blind", "head-flow"])] == ["head-flow", "blind"]
    with pytest.raises(ValueError, match="unknown variants \\['head-fow'\\]"):
        m.select(["head-fow"])


def test_bad_key_fails_before_training(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump({"dataset": "d.hdf5", "task": "pick", "base": "tiny", "axes": {"model.haed": ["flow"]}})
    )
    with pytest.raises(ValueError, match="unknown key 'haed'.*did you mean 'head'"):
        Matrix.load(path)


def _row(name: str, outcomes: str) -> dict:
    wins = outcomes.count("1")
    return {
        "variant": name,
        "success": {"successes": wins, "episodes": len(outcomes), "rate": wins / len(outcomes), "wilson95": [0.0, 1.0]},
        "named_object": {"rate": 1.0},
        "inference_ms_per_step": 1.0,
        "parameters": 10,
        "train_seconds": 1.0,
        "train_device": "cpu",
        "episode_success": {str(i): c == "1" for i, c in enumerate(outcomes)},
    }


def test_rows_are_compared_with_the_reference_seed_by_seed():
    rows = compare_to_reference([_row("default", "111100"), _row("other", "011111"), _row("old", "000000")], "default")
    rows[2].pop("vs_reference")
    del rows[2]["episode_success"]  # a row recorded without per-episode outcomes cannot be paired
    rows = compare_to_reference(rows, "default")
    assert rows[0]["vs_reference"] is None and rows[2]["vs_reference"] is None
    assert {k: rows[1]["vs_reference"][k] for k in ("won", "lost", "difference")} == {
        "won": 2,
        "lost": 1,
        "difference": 1,
    }
    table = markdown({"reference": "default", "rows": rows, "missing": []})
    assert "| default | 4/6 (67%) |" in table and "| reference |" in table
    assert "| +1 (2 won, 1 lost; p=1) |" in table
    assert "| old | 0/6 (0%) | [0.00, 1.00] | - | 100% | - |" in table


def test_main_effects_pool_the_pairs_that_differ_on_one_axis():
    axes = {"model.head": ["flow", "discrete"], "model.fusion": ["gated", "cross"]}
    outcomes = {
        ("flow", "gated"): "1100",
        ("flow", "cross"): "1111",
        ("discrete", "gated"): "0100",
        ("discrete", "cross"): "1110",
    }
    rows = [_row(f"{h}-{f}", o) | {"model.head": h, "model.fusion": f} for (h, f), o in outcomes.items()]
    rows.append(_row("blind", "0000"))  # a baseline is on no axis: it pairs with nothing
    head, fusion = main_effects(rows, axes)
    # discrete vs flow: with gated 1 lost (seed 0); with cross 1 lost (seed 3); 8 paired episodes
    assert head | {"p_mcnemar": None} == {
        "axis": "model.head",
        "reference": "flow",
        "value": "discrete",
        "pairs": 2,
        "reference_successes": 6,
        "value_successes": 4,
        "episodes": 8,
        "won": 0,
        "lost": 2,
        "difference": -2,
        "p_mcnemar": None,
    }
    assert head["p_mcnemar"] == 0.5  # two discordant, both one way: 2 * (1/2)^2
    # cross vs gated: with flow won seeds 2, 3; with discrete won seeds 0, 2
    assert (fusion["value"], fusion["won"], fusion["lost"], fusion["episodes"]) == ("cross", 4, 0, 8)
    rows = [r for r in rows if r["variant"] != "discrete-cross"]  # an unmeasured partner drops that pair
    assert [e["pairs"] for e in main_effects(rows, axes)] == [1, 1]
    assert "| model.fusion | cross vs gated | 2 | 8 | 7 vs 3 | +4 (4, 0) | 0.12 |" in markdown(
        {"reference": "flow-gated", "rows": [], "missing": [], "main_effects": [fusion]}
    )


def test_a_baseline_on_the_reference_design_stays_out_of_the_main_effects(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset": "d.hdf5",
                "task": "pick",
                "base": "tiny",
                "results": str(tmp_path),
                "axes": {"model.head": ["flow", "discrete"]},
                "baselines": {"again": {"model.head": "flow", "train.seed": 1}},
            }
        )
    )
    matrix = Matrix.load(path)
    (tmp_path / "rows").mkdir()
    for name, head, outcomes in [
        ("head-flow", "flow", "1100"),
        ("head-discrete", "discrete", "1110"),
        ("again", "flow", "0000"),
    ]:
        (tmp_path / "rows" / f"{name}.json").write_text(json.dumps(_row(name, outcomes) | {"model.head": head}))
    result = table(matrix)
    assert [r["variant"] for r in result["rows"]] == ["head-flow", "head-discrete", "again"]
    assert [(e["pairs"], e["won"], e["lost"]) for e in result["main_effects"]] == [(1, 1, 0)]  # against head-flow only
    assert result["rows"][2]["vs_reference"]["lost"] == 2


def test_ablate_end_to_end(tmp_path, vla_cmd, monkeypatch):
    demos = tmp_path / "pick.hdf5"
    collect("pick", 2, demos, config=EnvConfig(task="pick", image_size=32))
    matrix = _matrix(tmp_path, demos)
    subprocess.run(
        [*vla_cmd, "ablate", "--config", matrix, "--jobs", "2"], check=True, capture_output=True, timeout=900
    )
    result = json.loads((tmp_path / "ablation" / "ablation.json").read_text())
    assert [r["variant"] for r in result["rows"]] == ["head-flow", "head-discrete", "blind"]
    for row in result["rows"]:
        assert row["steps"] == 2 and row["success"]["episodes"] == 1 and row["parameters"] > 0
        assert row["episode_success"] == {"7000000": row["success"]["successes"] == 1}
    assert result["reference"] == "head-flow" and result["rows"][0]["vs_reference"] is None
    assert result["rows"][1]["vs_reference"]["episodes"] == 1
    assert [(e["axis"], e["value"], e["pairs"]) for e in result["main_effects"]] == [("model.head", "discrete", 1)]
    assert "| head-discrete |" in (tmp_path / "ablation" / "ablation.md").read_text()
    assert (tmp_path / "ablation" / "ablation.png").stat().st_size > 0
    rows = sorted(p.name for p in (tmp_path / "ablation" / "rows").iterdir())
    assert rows == ["blind.json", "head-discrete.json", "head-flow.json"]
    assert result["missing"] == []
    again = subprocess.run([*vla_cmd, "ablate", "--config", matrix], check=True, capture_output=True, text=True)
    assert "head-flow: recorded in" in again.stdout and "training" not in again.stdout  # finished work is kept

    # A fresh clone holds only the committed rows: it tabulates them and names what is missing.
    (tmp_path / "ablation" / "rows" / "blind.json").unlink()
    (tmp_path / "ablation" / "rows" / "head-discrete.json").unlink()
    subprocess.run([*vla_cmd, "ablate", "--config", matrix, "--phase", "table"], check=True, capture_output=True)
    partial = json.loads((tmp_path / "ablation" / "ablation.json").read_text())
    assert [r["variant"] for r in partial["rows"]] == ["head-flow"] and partial["missing"] == ["head-discrete", "blind"]
    assert "Not measured yet: head-discrete, blind." in (tmp_path / "ablation" / "ablation.md").read_text()
    # ... and measures only the variants it is asked for (here from the run's kept checkpoint and report).
    subset = subprocess.run(
        [*vla_cmd, "ablate", "--config", matrix, "--variants", "blind"], check=True, capture_output=True, text=True
    )
    assert "blind: evaluated" in subset.stdout and "head-discrete" not in subset.stdout.split("| variant |")[0]
    assert json.loads((tmp_path / "ablation" / "ablation.json").read_text())["missing"] == ["head-discrete"]
    assert "WARNING" not in (tmp_path / "ablation" / "ablation.md").read_text()
    # Rows trained on other data (a later collection that differs) are flagged.
    row = tmp_path / "ablation" / "rows" / "blind.json"
    row.write_text(json.dumps(json.loads(row.read_text()) | {"dataset_fingerprint": "other"}))
    subprocess.run([*vla_cmd, "ablate", "--config", matrix, "--phase", "table"], check=True, capture_output=True)
    assert "WARNING: the rows were trained on different datasets" in (tmp_path / "ablation" / "ablation.md").read_text()
    # A kill while the missing row is written leaves no row (the variant is not done), never half of one.
    discrete = Matrix.load(matrix).select(["head-discrete"])
    monkeypatch.setattr(os, "replace", _killed)
    with pytest.raises(SystemExit):
        eval_all(Matrix.load(matrix), discrete)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "ablation" / "rows").iterdir()) == ["blind.json", "head-flow.json"]
    eval_all(Matrix.load(matrix), discrete)
    assert json.loads((tmp_path / "ablation" / "rows" / "head-discrete.json").read_text())["steps"] == 2


def _killed(*args):
    raise SystemExit("killed before the rename")
