"""A robot that steps at another rate than the demonstrations, through the Twist interface.

sim_node stands in for a robot stepping at each `--rates` Hz (its own control_freq), taking
geometry_msgs/TwistStamped and integrating it over its own step; policy_node (config/policy.yaml,
output twist) runs the checkpoint unchanged. The same fresh seeds at every rate, the same horizon
in seconds. JSON with each rate's successes and Wilson interval.

    .venv/bin/python scripts/step_rate_experiment.py --checkpoint checkpoints/lift --task lift --episodes 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vla_ros.closed_loop import run_closed_loop

from vla_policy.eval.metrics import wilson_interval


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/lift")
    p.add_argument("--task", default="lift")
    p.add_argument("--rates", default="12,20,30")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=1_000_000)
    p.add_argument("--horizon-s", type=float, default=10.0)
    p.add_argument("--out", default="runs/step_rates")
    args = p.parse_args()
    rows = []
    for rate in (int(r) for r in args.rates.split(",")):
        sim = {"control_freq": rate, "command_interface": "twist", "horizon": int(args.horizon_s * rate)}
        summary = run_closed_loop(
            args.checkpoint,
            args.episodes,
            Path(args.out) / f"{rate}hz",
            task=args.task,
            seed=args.seed,
            sim=sim,
            policy={"output": "twist"},
            episode_timeout=60,
        )
        k, n = summary["successes"], summary["episodes"]
        rows.append(
            {
                "robot_step_hz": rate,
                "successes": k,
                "episodes": n,
                "rate": k / n,
                "wilson_95": [round(x, 3) for x in wilson_interval(k, n)],
                "diagnostics_at_end": summary["results"][-1]["diagnostics"].get("rate_hz/camera/agentview"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "checkpoint": args.checkpoint,
        "task": args.task,
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "interface": "twist",
        "horizon_s": args.horizon_s,
        "rows": rows,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "step_rates.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
