"""What a task is: a scene, a language goal, a success check and a scripted expert."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from sim.env import SimEnv

INSTRUCTION_SPLITS = ("train", "heldout", "all")
GOAL_KEY = ("skill", "target", "place_on", "direction")  # what a goal asks, its wording aside


@dataclass(frozen=True)
class Goal:
    """One episode's language goal, parsed into what success means."""

    skill: str  # "lift" | "pick" | "stack" | "push"
    instruction: str
    target: str  # the object the instruction names (acted on)
    place_on: str | None = None  # stack: the object to put `target` on
    direction: str | None = None  # push: "left" | "right" (robot's frame)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def key(self) -> tuple:
        """What it asks (GOAL_KEY's fields), whatever its wording: equal for two wordings of one goal."""
        return tuple(getattr(self, f) for f in GOAL_KEY)


@dataclass
class Expert(abc.ABC):
    """A scripted policy with privileged access to the simulator.

    It has the policy contract (`reset`, `select_action`) so the same runner that
    evaluates a learned policy evaluates the expert as an upper bound.
    """

    env: "SimEnv"
    goal: Goal
    noise_std: float = 0.0
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    # DAgger labelling: another policy drives, so an expert whose phase is a memory re-derives it
    # from the state at every step where it can (a label must be a function of the state).
    follow_state: bool = False

    def reset(self) -> None:
        """Called once per episode after the env reset."""

    @abc.abstractmethod
    def act(self) -> np.ndarray:
        """(7,) noiseless action in [-1, 1] from the current sim state."""

    def select_action(self, obs: dict | None = None) -> np.ndarray:
        action = self.act()
        if self.noise_std > 0:
            action[:6] += self.rng.normal(0.0, self.noise_std, size=6)
        return np.clip(action, -1.0, 1.0)


class Task(abc.ABC):
    """A registered task. Stateless apart from the scene it builds."""

    name: str
    horizon: int
    description: str = ""
    env_type = "robosuite"  # which env class runs it (sim.env.make_env)
    action_dim = 7  # end-effector delta (6) + gripper
    object_names: tuple[str, ...] = ()  # the scene's task objects, in `SimEnv.object_state` order

    @abc.abstractmethod
    def make_scene(self, **robosuite_kwargs):
        """Construct the robosuite environment (the physical scene)."""

    @abc.abstractmethod
    def instructions(self, split: str = "train") -> list[str]:
        """Every instruction of a split, in a fixed order."""

    @abc.abstractmethod
    def parse(self, instruction: str) -> Goal:
        """Goal for one of this task's instructions; ValueError lists valid ones."""

    @abc.abstractmethod
    def is_success(self, env: "SimEnv", goal: Goal) -> bool:
        """Whether the goal holds in the current sim state (Markov: state only)."""

    @abc.abstractmethod
    def make_expert(self, env: "SimEnv", goal: Goal, noise_std: float, rng: np.random.Generator) -> Expert:
        """A scripted expert for this goal."""

    def acted_object(self, env: "SimEnv", start_positions: dict[str, np.ndarray]) -> str | None:
        """The object the robot moved most since the episode start (None if none moved > 1 cm)."""
        moved = {
            name: float(np.linalg.norm(env.object_position(name) - start)) for name, start in start_positions.items()
        }
        if not moved:
            return None
        name, dist = max(moved.items(), key=lambda kv: kv[1])
        return name if dist > 0.01 else None

    def sample_goal(self, rng: np.random.Generator, split: str = "train") -> Goal:
        choices = self.instructions(split)
        return self.parse(choices[int(rng.integers(len(choices)))])

    def check_split(self, split: str) -> None:
        if split not in INSTRUCTION_SPLITS:
            raise ValueError(f"unknown instruction split {split!r}; choose one of {INSTRUCTION_SPLITS}")


TASKS: dict[str, Task] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: instantiate and register under `cls.name`."""
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> Task:
    if name not in TASKS:
        from sim.suggest import did_you_mean

        raise ValueError(f"unknown task {name!r}{did_you_mean(name, TASKS)}; valid tasks: {sorted(TASKS)}")
    return TASKS[name]
