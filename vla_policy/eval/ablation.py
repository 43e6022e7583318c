"""`vla ablate`: train and evaluate a matrix of model variants on the same data, budget and seeds,
and write one table (markdown + JSON + PNG).

A matrix file names the dataset, the task, a base preset, the shared training budget, the shared
evaluation, the axes to cross and extra baselines:

    dataset: data/tabletop_1200.hdf5
    task: tabletop
    out: runs/ablation
    base: default
    train: {steps: 4000, batch_size: 128}
    eval: {episodes: 30, seed: 3000000, workers: 2, instructions: train}   # optional: horizon
    results: docs/ablation     # optional (default: out): the table and one small row per variant
    axes:
      model.head: [flow, discrete]
      model.fusion: [early, cross, gated]
      model.world_model_weight: [0.1, 0.0]
    baselines:
      conv_bc: {model.architecture: conv_bc, model.world_model_weight: 0.0}

Phases can run on different machines (train where the GPU is, evaluate where the simulator is);
each phase skips the variants it has already finished, so an interrupted run continues. A
variant is finished for good once its row (`<results>/rows/<variant>.json`: success, inference
time, parameters, train time) is written; rows are small enough to commit, so a matrix too big for
one sitting can be measured a few variants at a time, the rows committed as they come, and the table phase
tabulates the rows there are and names the variants still missing. Every variant is evaluated on
the same seeds, so each row is also compared episode by episode with the first variant (the
reference: the first value of every axis), which tells apart variants whose intervals overlap,
and each axis's main effect is measured on every pair of rows that differ only on that axis.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from vla_policy.atomic import write_text_atomic
from vla_policy.config import load_config
from vla_policy.eval.metrics import paired_comparison

PHASES = ("train", "eval", "table")


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, object]  # dotted key -> value
    baseline: bool = False  # outside the crossed axes (the language-blind policy, a second training seed)


@dataclass(frozen=True)
class Matrix:
    dataset: str
    task: str
    out: Path
    base: str
    train: dict
    eval: dict
    variants: tuple[Variant, ...]
    results: Path
    axes: dict[str, list]  # dotted key -> its values, the first being the reference's

    @classmethod
    def load(cls, path: str | Path) -> "Matrix":
        data = yaml.safe_load(Path(path).read_text()) or {}
        missing = [k for k in ("dataset", "task", "axes") if k not in data]
        if missing:
            raise ValueError(f"{path}: the ablation matrix needs {missing}")
        axes: dict[str, list] = data["axes"]
        variants = []
        for values in itertools.product(*axes.values()):
            overrides = dict(zip(axes, values))
            variants.append(Variant("__".join(f"{k.split('.')[-1]}-{v}" for k, v in overrides.items()), overrides))
        for name, overrides in (data.get("baselines") or {}).items():
            variants.append(Variant(name, dict(overrides), baseline=True))
        matrix = cls(
            str(data["dataset"]),
            str(data["task"]),
            Path(data.get("out", "runs/ablation")),
            str(data.get("base", "default")),
            dict(data.get("train") or {}),
            dict(data.get("eval") or {}),
            tuple(variants),
            Path(data.get("results", data.get("out", "runs/ablation"))),
            axes,
        )
        for v in matrix.variants:  # fail on a bad key now, not after hours of training
            load_config(matrix.base, matrix.train_overrides(v))
        return matrix

    def select(self, names: list[str] | None) -> tuple[Variant, ...]:
        """The variants named (all when None), in the matrix's order."""
        if not names:
            return self.variants
        unknown = sorted(set(names) - {v.name for v in self.variants})
        if unknown:
            raise ValueError(f"unknown variants {unknown}; the matrix has {[v.name for v in self.variants]}")
        return tuple(v for v in self.variants if v.name in names)

    def run_dir(self, v: Variant) -> Path:
        return self.out / v.name

    def checkpoint(self, v: Variant) -> Path:
        return self.run_dir(v) / "checkpoints" / "last"

    def row_path(self, v: Variant) -> Path:
        return self.results / "rows" / f"{v.name}.json"

    def train_overrides(self, v: Variant) -> list[str]:
        shared = [f"train.{k}={_yaml_scalar(val)}" for k, val in self.train.items()]
        own = [f"{k}={_yaml_scalar(val)}" for k, val in v.overrides.items()]
        return [f"train.dataset={self.dataset}", f"train.out={self.run_dir(v)}", *shared, *own]


def _yaml_scalar(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _trained_steps(matrix: Matrix, v: Variant) -> int:
    meta = matrix.checkpoint(v) / "meta.json"
    return json.loads(meta.read_text())["step"] if meta.exists() else 0


# ------------------------------------------------------------------- train
def train_all(matrix: Matrix, jobs: int = 1, variants: tuple[Variant, ...] | None = None) -> None:
    """Train every unfinished variant (of `variants`, default all), `jobs` at a time, each in its own
    `vla train` process."""
    queue = []
    for v in variants or matrix.variants:
        if matrix.row_path(v).exists():
            print(f"[ablate] {v.name}: recorded in {matrix.row_path(v)}")
            continue
        steps = load_config(matrix.base, matrix.train_overrides(v)).train.steps
        done = _trained_steps(matrix, v)
        if done >= steps:
            print(f"[ablate] {v.name}: trained ({done} steps)")
            continue
        cmd = [
            sys.executable,
            "-m",
            "vla_policy.cli",
            "train",
            "--config",
            matrix.base,
            *(["--resume"] if done else []),
            *matrix.train_overrides(v),
        ]
        queue.append((v, cmd))
    running: list[tuple[Variant, subprocess.Popen]] = []
    failed = []
    while queue or running:
        while queue and len(running) < max(1, jobs):
            v, cmd = queue.pop(0)
            matrix.run_dir(v).mkdir(parents=True, exist_ok=True)
            log = open(matrix.run_dir(v) / "train.log", "a")
            print(f"[ablate] {v.name}: training")
            running.append((v, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
        time.sleep(2)
        for v, proc in list(running):
            if proc.poll() is not None:
                running.remove((v, proc))
                print(f"[ablate] {v.name}: {'done' if proc.returncode == 0 else f'FAILED (exit {proc.returncode})'}")
                if proc.returncode:
                    failed.append(v.name)
    if failed:
        raise RuntimeError(f"training failed for {failed}; see <out>/<variant>/train.log")


# -------------------------------------------------------------------- eval
def eval_all(matrix: Matrix, variants: tuple[Variant, ...] | None = None) -> None:
    from vla_policy.eval.report import write_report
    from vla_policy.eval.runner import checkpoint_env_config, evaluate

    e = matrix.eval
    for v in variants or matrix.variants:
        out = matrix.run_dir(v) / "eval"
        if matrix.row_path(v).exists():
            print(f"[ablate] {v.name}: recorded in {matrix.row_path(v)}")
            continue
        if (out / "report.json").exists():
            print(f"[ablate] {v.name}: evaluated")
            _record(matrix, v)
            continue
        if not (matrix.checkpoint(v) / "meta.json").exists():
            raise FileNotFoundError(f"{v.name} has no checkpoint at {matrix.checkpoint(v)}; run the train phase first")
        config = checkpoint_env_config(str(matrix.checkpoint(v)), matrix.task, e.get("instructions", "train"))
        if e.get("horizon"):
            config = dataclasses.replace(config, horizon=int(e["horizon"]))
        report = evaluate(
            config,
            {"kind": "checkpoint", "path": str(matrix.checkpoint(v))},
            int(e.get("episodes", 30)),
            int(e.get("seed", 3_000_000)),
            int(e.get("workers", 1)),
        )
        write_report(report, out)
        print(f"[ablate] {v.name}: {report['overall']['successes']}/{report['overall']['episodes']}")
        _record(matrix, v)


def _record(matrix: Matrix, v: Variant) -> None:
    """Write the variant's row: its result, without the checkpoint and videos it came from."""
    meta = json.loads((matrix.checkpoint(v) / "meta.json").read_text())
    report = json.loads((matrix.run_dir(v) / "eval" / "report.json").read_text())
    ms = sorted(r["inference_ms_mean"] for r in report["episodes"] if r.get("inference_ms_mean") is not None)
    row = {
        "variant": v.name,
        **{k: val for k, val in v.overrides.items()},
        "success": report["overall"],
        "per_skill": report["per_skill"],
        "skill_average": report.get("skill_average"),
        "named_object": report["named_object"],
        "episode_success": {str(r["seed"]): bool(r["success"]) for r in report["episodes"]},  # for paired comparison
        "inference_ms_per_step": ms[len(ms) // 2] if ms else None,  # median over episodes of the mean
        "parameters": meta["parameters"],
        "train_seconds": meta.get("train_seconds"),
        "train_device": meta.get("device"),
        "steps": meta["step"],
        "dataset_fingerprint": meta.get("dataset_fingerprint"),
    }
    matrix.row_path(v).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(matrix.row_path(v), json.dumps(row, indent=2))  # the row marks the variant done


# ------------------------------------------------------------------- table
def table(matrix: Matrix) -> dict:
    """The table of every recorded row, in the matrix's order; `missing` names the rest."""
    recorded = [v for v in matrix.variants if matrix.row_path(v).exists()]
    rows = [json.loads(matrix.row_path(v).read_text()) for v in recorded]
    reference = matrix.variants[0].name  # the first of the crossed axes' values: the default design
    result = {
        "task": matrix.task,
        "dataset": matrix.dataset,
        "base": matrix.base,
        "train": matrix.train,
        "eval": matrix.eval,
        "reference": reference,
        "rows": compare_to_reference(rows, reference),
        "main_effects": main_effects([r for v, r in zip(recorded, rows) if not v.baseline], matrix.axes),
        "missing": [v.name for v in matrix.variants if v not in recorded],
        "dataset_fingerprints": sorted({str(r.get("dataset_fingerprint")) for r in rows}),
    }
    matrix.results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(matrix.results / "ablation.json", json.dumps(result, indent=2))
    write_text_atomic(matrix.results / "ablation.md", markdown(result))
    if rows:
        plot(result, matrix.results / "ablation.png")
    return result


def compare_to_reference(rows: list[dict], reference: str) -> list[dict]:
    """Each row with `vs_reference`: the paired comparison with the reference row on the seeds both
    were evaluated on (None for the reference itself, or when either lacks per-episode outcomes)."""
    ref = next((r for r in rows if r["variant"] == reference), None)
    out = []
    for r in rows:
        paired = ref is not None and r is not ref and "episode_success" in r and "episode_success" in ref
        out.append(
            r | {"vs_reference": paired_comparison(ref["episode_success"], r["episode_success"]) if paired else None}
        )
    return out


def main_effects(rows: list[dict], axes: dict[str, list]) -> list[dict]:
    """For each axis, each other value against the first, pooled over the rest of the matrix: every
    pair of rows that differ only on that axis contributes its seeds, paired episode by episode
    (`difference` is the other value's successes minus the first's). Pooling gives each comparison
    several times the episodes of one row, so a factor's effect can be seen where no single pair of
    rows shows it."""
    keyed = {tuple(str(r.get(k)) for k in axes): r for r in rows if "episode_success" in r}
    effects = []
    for i, (axis, values) in enumerate(axes.items()):
        for value in values[1:]:
            first, other, pairs = {}, {}, 0
            for key, r in keyed.items():
                if key[i] != str(values[0]):
                    continue
                partner = keyed.get(key[:i] + (str(value),) + key[i + 1 :])
                if partner is None:
                    continue
                rest = "/".join(k for j, k in enumerate(key) if j != i)
                pairs += 1
                first |= {f"{rest}/{seed}": ok for seed, ok in r["episode_success"].items()}
                other |= {f"{rest}/{seed}": ok for seed, ok in partner["episode_success"].items()}
            if pairs:
                effects.append(
                    {
                        "axis": axis,
                        "reference": values[0],
                        "value": value,
                        "pairs": pairs,
                        "reference_successes": sum(first.values()),
                        "value_successes": sum(other.values()),
                        **paired_comparison(first, other),
                    }
                )
    return effects


def _versus(row: dict, reference: str) -> str:
    c = row.get("vs_reference")
    if row["variant"] == reference:
        return "reference"
    if not c:
        return "-"
    return f"{c['difference']:+d} ({c['won']} won, {c['lost']} lost; p={c['p_mcnemar']:.2g})"


def markdown(result: dict) -> str:
    reference = result.get("reference")
    lines = [
        "| variant | success | 95% CI | skill average | named object | vs reference, same seeds | "
        "inference ms (per step) | params | train s | device |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        s, n, avg = r["success"], r["named_object"], r.get("skill_average")
        average = f"{avg['rate']:.0%}" if avg else "-"
        lines.append(
            f"| {r['variant']} | {s['successes']}/{s['episodes']} ({s['rate']:.0%}) | "
            f"[{s['wilson95'][0]:.2f}, {s['wilson95'][1]:.2f}] | {average} | {n['rate']:.0%} | {_versus(r, reference)} | "
            f"{r['inference_ms_per_step']} | {r['parameters']:,} | {r['train_seconds']} | "
            f"{r['train_device']} |"
        )
    lines.append(
        f'\nReference: {reference}. "vs reference": seeds solved by the variant only (won) and by the '
        "reference only (lost), with the exact two-sided McNemar p-value; above 0.05 the difference "
        "cannot be told from chance on this many episodes."
    )
    if result.get("main_effects"):
        lines += [
            "\nMain effects, pooled over the other axes (each pair of rows that differ only on this axis, "
            "paired seed by seed):\n",
            "| axis | value vs first | pairs of rows | episodes | successes | difference (won, lost) | McNemar p |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in result["main_effects"]:
            lines.append(
                f"| {e['axis']} | {e['value']} vs {e['reference']} | {e['pairs']} | {e['episodes']} | "
                f"{e['value_successes']} vs {e['reference_successes']} | {e['difference']:+d} "
                f"({e['won']}, {e['lost']}) | {e['p_mcnemar']:.2g} |"
            )
    if result.get("missing"):
        lines.append(f"\nNot measured yet: {', '.join(result['missing'])}.")
    if len(result.get("dataset_fingerprints", [])) > 1:  # rows measured at different times must share their data
        lines.append(
            f"\nWARNING: the rows were trained on different datasets: {', '.join(result['dataset_fingerprints'])}."
        )
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"][::-1]  # barh draws bottom-up; the matrix's first variant goes on top
    rates = [r["success"]["rate"] for r in rows]
    low = [r["success"]["rate"] - r["success"]["wilson95"][0] for r in rows]
    high = [r["success"]["wilson95"][1] - r["success"]["rate"] for r in rows]
    is_reference = [r["variant"] == result.get("reference") for r in rows]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(rows)))
    ax.barh(
        range(len(rows)),
        rates,
        xerr=[low, high],
        capsize=3,
        color=["tab:orange" if ref else "tab:blue" for ref in is_reference],
    )
    if any(is_reference):
        ax.axvline(rates[is_reference.index(True)], color="tab:orange", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [r["variant"] for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("closed-loop success, Wilson 95% interval (orange: the reference)")
    ax.set_title(f"ablation on {result['task']}: {rows[0]['success']['episodes']} episodes per variant, same seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(path: str | Path, phase: str = "all", jobs: int = 1, only: list[str] | None = None) -> dict | None:
    """Run the phase (or all) for the variants named in `only` (default all); the table always
    holds every recorded row."""
    matrix = Matrix.load(path)
    variants = matrix.select(only)
    if phase in ("train", "all"):
        train_all(matrix, jobs, variants)
    if phase in ("eval", "all"):
        eval_all(matrix, variants)
    if phase in ("table", "all"):
        return table(matrix)
    return None


__all__ = ["Matrix", "PHASES", "Variant", "run"]
