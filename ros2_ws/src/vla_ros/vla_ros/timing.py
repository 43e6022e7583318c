"""Control-loop timing statistics, shared by the diagnostics and `vla bench ros`."""

from __future__ import annotations

import numpy as np


def percentile_ms(samples, q: float) -> float:
    """The q-th percentile of a sequence of seconds, in milliseconds (NaN when empty)."""
    return float(np.percentile(np.asarray(samples), q) * 1e3) if len(samples) else float("nan")


def loop_stats(tick_times, period: float) -> dict:
    """Rate and jitter (|tick interval - period|) of a timer from its tick times (seconds)."""
    ticks = np.asarray(tick_times, dtype=float)
    if len(ticks) < 2:
        return {
            "ticks": int(len(ticks)),
            "rate_hz": 0.0,
            "jitter_p50_ms": float("nan"),
            "jitter_p99_ms": float("nan"),
            "interval_max_ms": float("nan"),
        }
    intervals = np.diff(ticks)
    jitter = np.abs(intervals - period)
    return {
        "ticks": int(len(ticks)),
        "rate_hz": round(float(len(intervals) / (ticks[-1] - ticks[0])), 2),
        "jitter_p50_ms": round(percentile_ms(jitter, 50), 3),
        "jitter_p99_ms": round(percentile_ms(jitter, 99), 3),
        "interval_max_ms": round(float(intervals.max() * 1e3), 2),
    }
