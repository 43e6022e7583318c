"""Chunk-joining strategies under inference latency, closed loop, on the same fresh seeds.

For every strategy (ensemble, switch, rtc) and delay (ms), `vla eval`'s runner plays the
checkpoint with `delay_ms` of simulated inference latency in control time (Policy's docstring:
the chunk from step n's observation arrives at step n + delay; the robot meanwhile plays what is
queued, or holds; inference is serial). Success with its Wilson interval, the paired comparison
against the same strategy at 0 ms, and smoothness from the actions actually sent (boundary-jump
ratio, end-effector jerk). Each cell is kept as it finishes (<out>/<join>_<ms>.json), so a run
that stops resumes where it was. A markdown table and latency.json at the end.

    .venv/bin/python scripts/latency_experiment.py --episodes 60 --workers 2 --out docs/latency
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vla_policy.atomic import write_text_atomic
from vla_policy.eval.metrics import paired_comparison
from vla_policy.eval.runner import checkpoint_env_config, evaluate


def cell(args, join: str, delay: float) -> dict:
    path = Path(args.out) / f"{join}_{delay:g}.json"
    if path.exists():
        return json.loads(path.read_text())
    config = checkpoint_env_config(args.checkpoint, args.task, "train")
    spec = {"kind": "checkpoint", "path": args.checkpoint, "join": join, "delay_ms": delay}
    if args.replan_every:
        spec["replan_every"] = args.replan_every
    report = evaluate(config, spec, args.episodes, args.seed, args.workers)
    row = {
        "join": join,
        "delay_ms": delay,
        "overall": report["overall"],
        "skill_average": report["skill_average"]["rate"],
        "smoothness": report["smoothness"],
        "successes_by_seed": {str(r["seed"]): r["success"] for r in report["episodes"]},
        "seconds": report["seconds"],
    }
    write_text_atomic(path, json.dumps(row))
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| join | delay ms | success | 95% CI | vs 0 ms (won/lost) | boundary-jump ratio | jerk p95 m/s^3 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        o, s, p = r["overall"], r["smoothness"] or {}, r.get("vs_0ms")
        paired = "" if p is None else f"{p['won']}/{p['lost']}"
        ratio = "" if s.get("boundary_jump_ratio") is None else f"{s['boundary_jump_ratio']:.2f}"
        jerk = "" if s.get("jerk_p95") is None else f"{s['jerk_p95']:.1f}"
        lines.append(
            f"| {r['join']} | {r['delay_ms']:g} | {o['successes']}/{o['episodes']} | {o['wilson95']} "
            f"| {paired} | {ratio} | {jerk} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/default")
    p.add_argument("--task", default="tabletop")
    p.add_argument("--joins", default="ensemble,switch,rtc")
    p.add_argument("--delays", default="0,100,200,300,500")
    p.add_argument("--episodes", type=int, default=60)
    p.add_argument("--seed", type=int, default=1_000_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--replan-every", type=int, default=8, help="control steps a chunk is due after its frame")
    p.add_argument("--out", default="runs/latency")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = []
    for join in args.joins.split(","):
        base = None
        for delay in (float(d) for d in args.delays.split(",")):
            row = cell(args, join, delay)
            base = row if delay == 0 else base
            if base is not None and delay != 0:
                row["vs_0ms"] = paired_comparison(base["successes_by_seed"], row["successes_by_seed"])
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "successes_by_seed"}), flush=True)
    result = {"checkpoint": args.checkpoint, "task": args.task, "replan_every": args.replan_every, "rows": rows}
    write_text_atomic(Path(args.out) / "latency.json", json.dumps(result, indent=2))
    (Path(args.out) / "latency.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
