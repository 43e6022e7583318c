"""A policy (for `vla eval --policy tests.crash_policy:make`) whose worker process dies on one seed."""

from __future__ import annotations

import os

from sim.expert_policy import ExpertPolicy


def make(env, crash_seed: int):
    class CrashingExpert(ExpertPolicy):
        def select_action(self, obs):
            if env.seed == crash_seed:
                os._exit(3)  # what a segfault or an OOM kill looks like from outside
            return super().select_action(obs)

    return CrashingExpert(env)
