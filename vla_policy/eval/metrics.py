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
    return {
        "successes": successes,
        "episodes": trials,
        "rate": successes / trials if trials else 0.0,
        "wilson95": [round(low, 4), round(high, 4)],
    }


def paired_comparison(reference: dict[str, bool], other: dict[str, bool]) -> dict:
    """Compare two policies run on the same episode seeds (seed -> success), as an ablation does.

    Counts the seeds only one of them solved and gives the exact two-sided McNemar p-value: the
    chance, if the two were equally good, of a split between the discordant seeds at least this
    uneven. Pairing removes the scene-to-scene variance that two separate intervals carry, so it
    can tell apart variants whose Wilson intervals overlap."""
    seeds = sorted(set(reference) & set(other))
    lost = sum(reference[s] and not other[s] for s in seeds)  # solved by the reference only
    won = sum(other[s] and not reference[s] for s in seeds)  # solved by the other only
    discordant = won + lost
    tail = sum(math.comb(discordant, k) for k in range(min(won, lost) + 1)) / 2**discordant
    return {
        "episodes": len(seeds),
        "won": won,
        "lost": lost,
        "difference": won - lost,
        "p_mcnemar": min(1.0, 2 * tail) if discordant else 1.0,
    }
