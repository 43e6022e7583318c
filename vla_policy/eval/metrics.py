"""Success statistics."""

from __future__ import annotations

import math


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial rate (95% by default); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rate_summary(successes: int, trials: int) -> dict:
    low, high = wilson_interval(successes, trials)
    return {"successes": successes, "episodes": trials, "rate": successes / trials if trials else 0.0,
            "wilson95": [round(low, 4), round(high, 4)]}
