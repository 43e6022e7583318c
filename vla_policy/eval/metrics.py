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


def paired_reports(reference: dict, report: dict) -> dict:
    """`report` against `reference`, two `vla eval` reports over the same seeds (the same scenes
    and goals; e.g. held-out wordings against training wordings): seeds won and lost, overall and
    per skill, and the ratio of the two per-skill averages. Seeds only one report has are left out
    and counted."""
    ours = {r["seed"]: r for r in report["episodes"]}
    theirs = {r["seed"]: r for r in reference["episodes"]}
    shared = sorted(set(ours) & set(theirs))
    if not shared:
        raise ValueError("the two reports share no episode seeds; evaluate both with the same --seed")

    def outcomes(records: dict, seeds: list) -> dict:
        return {s: bool(records[s]["success"]) for s in seeds}

    per_skill = {}
    for skill in sorted({str(theirs[s].get("skill")) for s in shared}):
        seeds = [s for s in shared if str(theirs[s].get("skill")) == skill]
        per_skill[skill] = paired_comparison(outcomes(theirs, seeds), outcomes(ours, seeds))
    reference_average = reference["skill_average"]["rate"]
    return {
        **paired_comparison(outcomes(theirs, shared), outcomes(ours, shared)),
        "unpaired_seeds": len(set(ours) ^ set(theirs)),
        "per_skill": per_skill,
        "skill_average_ratio": report["skill_average"]["rate"] / reference_average if reference_average else None,
    }
