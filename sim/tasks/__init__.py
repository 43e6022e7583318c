"""Task registry: one module per task; importing this package registers them all."""

from sim.tasks import lift, meta_world, tabletop  # noqa: F401,E402  (registration side effect)
from sim.tasks.base import INSTRUCTION_SPLITS, TASKS, Expert, Goal, Task, get_task, register_task

meta_world.register_all(TASKS)
TASK_GROUPS = dict(meta_world.GROUPS)  # name -> its tasks (mt10, mt50, metaworld-<difficulty>)


def expand_tasks(name: str) -> tuple[str, ...]:
    """A task group, or tasks joined by commas, -> the tasks (each checked); a task -> itself."""
    names = TASK_GROUPS.get(name) or tuple(n.strip() for n in name.split(",") if n.strip())
    for task in names:
        get_task(task)
    return names


def group_name(tasks) -> str:
    """The inverse of expand_tasks: a registered group's name when `tasks` are exactly its tasks."""
    tasks = tuple(sorted(tasks))
    return next((g for g, members in TASK_GROUPS.items() if tuple(sorted(members)) == tasks), ",".join(tasks))


__all__ = [
    "INSTRUCTION_SPLITS",
    "TASKS",
    "TASK_GROUPS",
    "Expert",
    "Goal",
    "Task",
    "expand_tasks",
    "get_task",
    "group_name",
    "register_task",
]
