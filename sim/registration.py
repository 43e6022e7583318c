"""Registers every task with gymnasium as `vla_stack/<Task>-v0`."""

from __future__ import annotations

import gymnasium as gym


def gym_id(task_name: str) -> str:
    return f"vla_stack/{task_name.capitalize()}-v0"


def register_gymnasium_envs() -> None:
    from sim.tasks import TASKS

    for name, task in TASKS.items():
        if task.env_type == "robosuite" and gym_id(name) not in gym.registry:  # Meta-World registers its own
            gym.register(
                id=gym_id(name),
                entry_point="sim.gym_env:VLAGymEnv",
                kwargs={"task": name},
                max_episode_steps=task.horizon,
            )
