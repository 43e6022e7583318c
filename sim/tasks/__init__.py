"""Task registry: one module per task; importing this package registers them all."""

from sim.tasks import lift, meta_world, tabletop  # noqa: F401,E402  (registration side effect)
from sim.tasks.base import INSTRUCTION_SPLITS, TASKS, Expert, Goal, Task, get_task, register_task

meta_world.register_all(TASKS)

__all__ = ["INSTRUCTION_SPLITS", "TASKS", "Expert", "Goal", "Task", "get_task", "register_task"]
