"""Fast offscreen camera rendering for robosuite scenes.

Software (llvmpipe/EGL) rendering cost is dominated by triangle count: the Panda's
visual meshes carry ~168k faces, its collision meshes ~15k. The default `fast`
quality therefore draws the robot with its (recoloured) collision meshes, and turns
off multisampling, shadows, reflections, skybox and haze. Everything the policy
must see (table, objects, their colours, the gripper fingers) is unchanged.
`full` quality keeps robosuite's visual meshes with the same cheap settings.
"""

from __future__ import annotations

import atexit
import weakref

import mujoco
import numpy as np

QUALITIES = ("fast", "full")
HEAVY_MESH_FACES = 2000  # visual meshes above this many faces are swapped in `fast`
VISUAL_GROUP, COLLISION_GROUP, HIDDEN_GROUP = 1, 0, 5
ROBOT_RGBA = np.array([0.92, 0.92, 0.92, 1.0])
HAND_RGBA = np.array([0.25, 0.25, 0.28, 1.0])


def _cheapen_model(model: mujoco.MjModel, width: int, height: int) -> None:
    """Quality settings that cost time and teach a policy nothing."""
    model.vis.quality.offsamples = 0
    model.vis.quality.shadowsize = 0
    model.mat_reflectance[:] = 0
    model.light_castshadow[:] = 0
    model.vis.global_.offwidth = width
    model.vis.global_.offheight = height


def _swap_heavy_robot_meshes(model: mujoco.MjModel) -> None:
    """Hide heavy robot visual meshes; show that body's collision meshes instead."""
    swapped_bodies = set()
    for g in range(model.ngeom):
        if model.geom_group[g] != VISUAL_GROUP or model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        if model.mesh_facenum[model.geom_dataid[g]] > HEAVY_MESH_FACES:
            model.geom_group[g] = HIDDEN_GROUP
            swapped_bodies.add(int(model.geom_bodyid[g]))
    for g in range(model.ngeom):
        if model.geom_group[g] == COLLISION_GROUP and int(model.geom_bodyid[g]) in swapped_bodies:
            name = model.geom(g).name
            model.geom_rgba[g] = HAND_RGBA if "gripper" in name or "hand" in name else ROBOT_RGBA
            model.geom_matid[g] = -1
            model.geom_group[g] = VISUAL_GROUP


_LIVE: "weakref.WeakSet[CameraRenderer]" = weakref.WeakSet()
_EXIT_HOOK_REGISTERED = False


def _close_live_renderers() -> None:
    """Free GL contexts at exit. Registered after the first context exists, so it runs before
    mujoco's own atexit eglTerminate (atexit is last-in, first-out)."""
    for renderer in list(_LIVE):
        try:
            renderer.close()
        except Exception:  # noqa: BLE001 - EGL may already be torn down in worker processes
            pass


class CameraRenderer:
    """Renders named cameras of a MuJoCo model to upright uint8 RGB arrays."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int, quality: str = "fast"):
        if quality not in QUALITIES:
            raise ValueError(f"unknown render quality {quality!r}; choose one of {QUALITIES}")
        _cheapen_model(model, width, height)
        if quality == "fast":
            _swap_heavy_robot_meshes(model)
        self.model = model
        self.width, self.height = width, height
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        flags = self._renderer.scene.flags
        for flag in ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX", "mjRND_HAZE", "mjRND_FOG"):
            flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = 0
        self._option.geomgroup[VISUAL_GROUP] = 1
        self._option.sitegroup[:] = 0
        _LIVE.add(self)
        global _EXIT_HOOK_REGISTERED
        if not _EXIT_HOOK_REGISTERED:
            atexit.register(_close_live_renderers)
            _EXIT_HOOK_REGISTERED = True

    def render(self, data: mujoco.MjData, camera: int | str) -> np.ndarray:
        """(H, W, 3) uint8, upright (mujoco.Renderer already flips OpenGL's rows)."""
        self._renderer.update_scene(data, camera=camera, scene_option=self._option)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
