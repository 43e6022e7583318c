"""Evaluation over a task group (Meta-World's MT10, MT50): every task on the same seeds, then per
task, per difficulty group and the average over the groups, as SmolVLA's MT50 table reports it
(each difficulty group's rate is the mean over its tasks; the average is the mean of the groups').

Intervals: Wilson 95% per task and per group (its episodes pooled); for the average of the group
rates, a normal interval from the groups' binomial variances (the groups are independent
samples; the average weighs each group once, whatever its size)."""

from __future__ import annotations

import math

from vla_policy.eval.metrics import rate_summary


def suite_summary(reports: dict[str, dict], difficulty: dict[str, str]) -> dict:
    """reports: task -> its `evaluate` report; difficulty: task -> its group."""
    per_task = {task: r["overall"] for task, r in reports.items()}
    groups: dict[str, list[str]] = {}
    for task in reports:
        groups.setdefault(difficulty.get(task, "all"), []).append(task)
    per_group = {}
    for group, tasks in groups.items():
        pooled = rate_summary(sum(per_task[t]["successes"] for t in tasks), sum(per_task[t]["episodes"] for t in tasks))
        mean = sum(per_task[t]["rate"] for t in tasks) / len(tasks)
        per_group[group] = {**pooled, "rate": mean, "tasks": len(tasks)}
    rates = [g["rate"] for g in per_group.values()]
    average = sum(rates) / len(rates)
    variance = sum(g["rate"] * (1 - g["rate"]) / max(g["episodes"], 1) for g in per_group.values()) / len(rates) ** 2
    half = 1.96 * math.sqrt(variance)
    return {
        "tasks": len(reports),
        "episodes": sum(p["episodes"] for p in per_task.values()),
        "per_task": per_task,
        "per_group": per_group,
        "group_average": {
            "rate": average,
            "normal95": [round(max(0.0, average - half), 4), round(min(1.0, average + half), 4)],
        },
        "task_average": sum(p["rate"] for p in per_task.values()) / len(per_task),
    }
