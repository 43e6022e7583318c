"""Simulation for vla_stack: robosuite/MuJoCo tasks behind one env API. Never imports ROS."""

import logging
import os

# Headless offscreen rendering unless the user chose a GL backend; must precede any mujoco import.
os.environ.setdefault("MUJOCO_GL", "egl")
# robosuite warns at import about optional extras we do not use (private macros, robosuite_models,
# mink IK) and about controller parts the Panda lacks; keep its errors, drop that noise.
logging.getLogger("robosuite_logs").addFilter(lambda record: record.levelno >= logging.ERROR)

from sim.registration import register_gymnasium_envs  # noqa: E402

register_gymnasium_envs()
