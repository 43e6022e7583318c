"""Scripted experts: closed-loop state machines over privileged simulator state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.tasks.base import Expert
from sim.tasks.motion import CLOSE, OPEN, move_action, rotation_action, wrap, yaw_of
from sim.tasks.objects import CUBE_HALF

HOVER = 0.10  # metres above an object before descending
GRASP_STEPS = 12  # the Panda gripper needs ~10 control steps to close fully
RELEASE_STEPS = 8
# Approach and descent keep at least this speed until their thresholds: a proportional approach
# creeps in with ever smaller actions, and policies cloned from it stall where it crept.
MIN_SPEED = 0.3
GRASP_HEIGHT_TOLERANCE = 0.008  # metres between the fingers and the grasp height when they close
# Lower a carried cube once it is this well aligned over its base (success allows 2.5 cm): a
# tighter gate than a cloned policy can see makes it hover over the base instead of lowering.
PLACE_XY_TOLERANCE = 0.01  # metres
PLACE_YAW_TOLERANCE = 0.1  # radians


@dataclass
class _Phases(Expert):
    """Shared bookkeeping: home orientation, phase name, steps spent in the phase."""

    def reset(self) -> None:
        self.home = self.env.eef_rotation
        self.home_yaw = yaw_of(self.home)
        self.phase = self.first_phase
        self.phase_steps = 0

    def _goto(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0

    def _action(self, target, yaw: float, gripper: float, speed: float = 1.0, min_speed: float = 0.0) -> np.ndarray:
        rot = rotation_action(self.env.eef_rotation, self.home, self.home_yaw, yaw)
        return move_action(self.env.eef_pos, target, rot, gripper, speed, min_speed)

    def _yaw_error(self, yaw: float) -> float:
        return abs(wrap(yaw_of(self.env.eef_rotation) - yaw))

    def act(self) -> np.ndarray:
        if self.follow_state:
            phase = self._phase_from_state()
            if phase != self.phase:
                self._goto(phase)
        self.phase_steps += 1
        return getattr(self, f"_{self.phase}")()

    def _phase_from_state(self) -> str:
        return self.phase  # experts that cannot tell their phase from the state keep their memory


@dataclass
class GraspExpert(_Phases):
    """Grasp `goal.target` and lift it; with `goal.place_on`, set it down on that object.

    The gripper grasps at its home yaw whatever the cube's yaw: the wide-open fingers closing on
    a cube turn it into line (lift 100/100, tabletop 60/60 with noise 0.05). Turning to the cube's
    faces made the grasp yaw flip between +45 and -45 degrees for cubes that look the same (a cube
    is symmetric under 90 degrees), and cloned policies failed exactly there (docs/RESULTS.md).
    """

    first_phase = "approach"

    def _target(self) -> np.ndarray:
        return self.env.object_position(self.goal.target)

    def _phase_from_state(self) -> str:
        """Releasing or retreating: keep it. Holding the target: keep the carrying phase (lift by
        default). Otherwise: over the target and aligned, below the hover point: descend, or close
        at grasp height (for at most GRASP_STEPS + 5 steps: then it missed); anywhere else:
        approach (open, go to the hover point)."""
        if self.phase in ("release", "retreat"):
            return self.phase  # placed: letting go is the goal, not a drop
        if self.env.is_grasping(self.goal.target):
            return self.phase if self.phase in ("lift", "carry", "lower") else "lift"
        pos = self._target()
        offset = self.env.eef_pos - pos
        over = np.linalg.norm(offset[:2]) < 0.015 and self._yaw_error(self.home_yaw) < 0.15 and offset[2] < HOVER + 0.03
        if not over:
            return "approach"
        above_grasp = offset[2] + 0.005  # metres above the grasp height (_descend's grasp_at)
        if abs(above_grasp) < GRASP_HEIGHT_TOLERANCE and not (
            self.phase == "grasp" and self.phase_steps > GRASP_STEPS + 5
        ):
            return "grasp"
        return "descend" if above_grasp > GRASP_HEIGHT_TOLERANCE else "approach"

    def _approach(self) -> np.ndarray:
        pos = self._target()
        hover = pos + [0, 0, HOVER]
        error = hover - self.env.eef_pos
        if np.linalg.norm(error[:2]) < 0.015 and abs(error[2]) < 0.03 and self._yaw_error(self.home_yaw) < 0.15:
            self._goto("descend")  # no stop at the hover point
        return self._action(hover, self.home_yaw, OPEN, min_speed=MIN_SPEED)

    def _descend(self) -> np.ndarray:
        pos = self._target()
        grasp_at = pos - [0, 0, 0.005]
        # Close once the fingers are low enough. The wide-open fingers forgive the xy error the
        # approach left, and a height is a decision a cloned policy can read off its proprio; a
        # 3-d distance threshold is not, and policies hovered beside it with the gripper open.
        if abs(grasp_at[2] - self.env.eef_pos[2]) < GRASP_HEIGHT_TOLERANCE or self.phase_steps > 40:
            self._goto("grasp")
        return self._action(grasp_at, self.home_yaw, OPEN, speed=0.6, min_speed=MIN_SPEED)

    def _grasp(self) -> np.ndarray:
        pos = self._target()
        if self.phase_steps >= GRASP_STEPS:
            self._goto("lift")
        return self._action(pos - [0, 0, 0.005], self.home_yaw, CLOSE)

    def _lift(self) -> np.ndarray:
        held = self.env.object_position(self.goal.target)
        carry_z = self.env.table_height + 0.16
        if self.goal.place_on is not None and held[2] > carry_z - 0.02:
            self._goto("carry")
        if not self.env.is_grasping(self.goal.target) and self.phase_steps > 5:
            self._goto("approach")  # dropped it: start over
        target = self.env.eef_pos.copy()
        target[2] = carry_z
        return self._action(target, yaw_of(self.env.eef_rotation), CLOSE, speed=0.8)

    def _place_error(self) -> np.ndarray:
        """How far the held cube's centre is from resting on top of `place_on`."""
        base = self.env.object_position(self.goal.place_on)
        held = self.env.object_position(self.goal.target)
        return base + [0, 0, 2 * CUBE_HALF + 0.004] - held

    def _carry(self) -> np.ndarray:
        err = self._place_error()
        if np.linalg.norm(err[:2]) < PLACE_XY_TOLERANCE and self._yaw_error(self.home_yaw) < PLACE_YAW_TOLERANCE:
            self._goto("lower")
        err[2] = 0.0
        return self._action(self.env.eef_pos + err, self.home_yaw, CLOSE, speed=0.8)

    def _lower(self) -> np.ndarray:
        err = self._place_error()
        if abs(err[2]) < 0.006 or self.phase_steps > 60:
            self._goto("release")
        return self._action(self.env.eef_pos + err, self.home_yaw, CLOSE, speed=0.4)

    def _release(self) -> np.ndarray:
        if self.phase_steps >= RELEASE_STEPS:
            self._goto("retreat")
        return self._action(self.env.eef_pos, yaw_of(self.env.eef_rotation), OPEN, speed=0.0)

    def _retreat(self) -> np.ndarray:
        target = self.env.eef_pos + [0, 0, 0.05]
        return self._action(target, yaw_of(self.env.eef_rotation), OPEN, speed=0.5)


@dataclass
class PushExpert(_Phases):
    """Close the gripper, lower it beside `goal.target` and push it along `goal.direction`."""

    first_phase = "approach"
    BEHIND = 0.065  # metres between the gripper and the cube centre before pushing
    PUSH_Z = 0.018  # gripper height above the table while pushing

    @property
    def sign(self) -> float:
        return 1.0 if self.goal.direction == "left" else -1.0  # robot's left is +y

    def _behind(self) -> np.ndarray:
        pos = self.env.object_position(self.goal.target)
        return np.array([pos[0], pos[1] - self.sign * self.BEHIND, self.env.table_height + self.PUSH_Z])

    def _approach(self) -> np.ndarray:
        hover = self._behind() + [0, 0, HOVER]
        if np.linalg.norm(hover - self.env.eef_pos) < 0.015:
            self._goto("descend")
        return self._action(hover, self.home_yaw, CLOSE)

    def _descend(self) -> np.ndarray:
        start = self._behind()
        if np.linalg.norm(start - self.env.eef_pos) < 0.01 or self.phase_steps > 40:
            self._goto("push")
        return self._action(start, self.home_yaw, CLOSE, speed=0.6)

    def _push(self) -> np.ndarray:
        pos = self.env.object_position(self.goal.target)
        eef = self.env.eef_pos
        if abs(eef[0] - pos[0]) > 0.03 or abs(eef[2] - (self.env.table_height + self.PUSH_Z)) > 0.03:
            self._goto("approach")  # lost the cube: go round again
        target = np.array([pos[0], eef[1] + self.sign * 0.03, self.env.table_height + self.PUSH_Z])
        if self.env.is_success():
            self._goto("retreat")
        return self._action(target, self.home_yaw, CLOSE, speed=0.6)

    def _retreat(self) -> np.ndarray:
        return self._action(self.env.eef_pos + [0, 0, 0.05], self.home_yaw, CLOSE, speed=0.5)
