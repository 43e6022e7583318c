"""Smoothness of the actions a robot was actually sent, where chunks meet and within them.

The boundary-jump ratio is the mean action step (L2 over the arm dimensions; the gripper is a
binary that switches by design) at steps where the playing chunk changed, over the median step
within a chunk: 1 means a chunk boundary is as smooth as the motion inside a chunk. Jerk is the
third time derivative of the end-effector position (measured, in eval) or the second of the
commanded end-effector velocity (what was sent, on ROS). Shared by `vla eval` (from the policy's
record of which chunk each action came from) and `vla bench ros` (from the published topics).
"""

from __future__ import annotations

import numpy as np


def action_steps(actions: np.ndarray, sources: np.ndarray, arm_dims: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """actions (T, A) as sent, sources (T,) id of the chunk each came from (-1: a hold) ->
    (boundary steps, within-chunk steps), each an array of L2 norms of a_t - a_{t-1}."""
    actions, sources = np.asarray(actions, dtype=np.float64), np.asarray(sources)
    if len(actions) != len(sources):
        raise ValueError(f"{len(actions)} actions but {len(sources)} sources")
    steps = np.linalg.norm(np.diff(actions[:, :arm_dims], axis=0), axis=1)  # (T-1,)
    played = (sources[1:] >= 0) & (sources[:-1] >= 0)
    changed = sources[1:] != sources[:-1]
    return steps[played & changed], steps[played & ~changed]


def new_actions(played: list[tuple[np.ndarray, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """A control loop's ticks (action sent, chunk id or -1, index in that chunk) -> the (T, A)
    actions and (T,) sources at the ticks where a new action was due: a loop faster than the
    chunk's period sends each action for several ticks, and those repeats are not steps."""
    keep = [i for i, (_, cid, index) in enumerate(played) if i == 0 or (cid, index) != played[i - 1][1:]]
    if not keep:
        return np.zeros((0, 0)), np.zeros(0, dtype=int)
    return np.stack([played[i][0] for i in keep]), np.array([played[i][1] for i in keep])


def boundary_jump_ratio(boundary: np.ndarray, within: np.ndarray) -> float | None:
    """Mean boundary step / median within-chunk step (None without both)."""
    if len(boundary) == 0 or len(within) == 0 or np.median(within) <= 0:
        return None
    return float(np.mean(boundary) / np.median(within))


def jerk(positions: np.ndarray, dt: float) -> np.ndarray:
    """(T, 3) end-effector positions sampled every dt -> (T-3,) |d^3 x / dt^3| in m/s^3."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 4:
        return np.zeros(0)
    return np.linalg.norm(np.diff(positions, n=3, axis=0), axis=1) / dt**3


def commanded_jerk(actions: np.ndarray, scale: np.ndarray, dt: float) -> np.ndarray:
    """(T, A) normalised end-effector delta actions played every dt, (A,) their per-step scale in
    metres -> (T-2,) |d^2 v / dt^2| of the commanded linear velocity, m/s^3."""
    actions = np.asarray(actions, dtype=np.float64)
    if len(actions) < 3:
        return np.zeros(0)
    velocity = actions[:, :3] * np.asarray(scale[:3]) / dt  # (T, 3) m/s
    return np.linalg.norm(np.diff(velocity, n=2, axis=0), axis=1) / dt**2


def summarize(boundary: np.ndarray, within: np.ndarray, jerks: np.ndarray) -> dict:
    """Pooled over episodes: the ratio, its parts, and jerk's median and p95."""
    return {
        "boundary_jump_ratio": boundary_jump_ratio(boundary, within),
        "boundary_step_mean": float(np.mean(boundary)) if len(boundary) else None,
        "within_step_median": float(np.median(within)) if len(within) else None,
        "boundaries": int(len(boundary)),
        "jerk_median": float(np.median(jerks)) if len(jerks) else None,
        "jerk_p95": float(np.percentile(jerks, 95)) if len(jerks) else None,
    }


def pooled(episodes: list[dict]) -> dict | None:
    """Per-episode `summarize` dicts -> one: the boundary mean over all boundaries, over the median
    of the episodes' within-chunk medians; jerk as the median of the episodes' medians and p95s."""
    counted = [e for e in episodes if e["boundaries"] and e["within_step_median"] is not None]
    if not counted:
        return None
    boundary = sum(e["boundary_step_mean"] * e["boundaries"] for e in counted) / sum(e["boundaries"] for e in counted)
    within = float(np.median([e["within_step_median"] for e in counted]))
    jerks = [e for e in episodes if e["jerk_median"] is not None]
    return {
        "boundary_jump_ratio": boundary / within if within > 0 else None,
        "boundary_step_mean": boundary,
        "within_step_median": within,
        "boundaries": sum(e["boundaries"] for e in counted),
        "jerk_median": float(np.median([e["jerk_median"] for e in jerks])) if jerks else None,
        "jerk_p95": float(np.median([e["jerk_p95"] for e in jerks])) if jerks else None,
    }
