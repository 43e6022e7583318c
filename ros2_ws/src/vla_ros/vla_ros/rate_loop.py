"""A fixed-rate loop in a thread of its own, as ros2_control runs its controllers.

Measured (docs/RESULTS.md): beside a simulator on 2 cores, the OS scheduler and the GIL, not a
tick's own work, made the p99 jitter of an rclpy timer; a thread with SCHED_FIFO priority and a
0.5 ms GIL switch interval held p99 under 1.4 ms where the timer had 5.3 ms.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

GIL_SWITCH_INTERVAL_S = 0.0005  # CPython's 5 ms lets a Python-busy thread hold a woken tick back


def make_realtime(priority: int) -> str | None:
    """SCHED_FIFO at `priority` for the calling thread (0: leave it) and a short GIL switch
    interval for the process. -> why the priority was refused (needs root, CAP_SYS_NICE or an
    rtprio limit; 1..99), or None."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return None
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(priority))
    except OSError as error:
        return str(error)
    return None


def run_at_rate(period_s: float, tick: Callable[[], None], running: Callable[[], bool]) -> None:
    """Call `tick` once per period at absolute deadlines on the steady clock while `running()`.
    An overrun is not made up with a burst: after more than a period late, the schedule restarts."""
    deadline = time.monotonic()
    while running():
        deadline += period_s
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period_s:
            deadline = time.monotonic()
        tick()
