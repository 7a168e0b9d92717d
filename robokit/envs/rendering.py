"""Headless MuJoCo rendering: pick a GL backend before mujoco loads, and render cameras fast.

MuJoCo reads `MUJOCO_GL` once, when it is first imported. With no display (a server, CI, a
container) the default GLFW backend fails, so `configure_headless_gl()` chooses EGL when the
EGL library is installed (Debian: libegl1 + libgl1-mesa-dri; Mesa's llvmpipe renders on the
CPU when no GPU is present) and OSMesa (Debian: libosmesa6) otherwise. A user's own
`MUJOCO_GL` is always kept. `robokit.envs` calls it before any simulator import.

`MujocoCamera` renders one camera of a MuJoCo model into a uint8 (H, W, 3) array. With
`fast=True` it turns off shadows, reflections and multisampling: on a CPU renderer that is a
several-fold speed-up for images that a policy sees as well as the default ones.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import sys

import numpy as np

logger = logging.getLogger(__name__)

_gl_context_opened = False
"""True once this process opened a GL context; a process that did must not fork env workers."""


def gl_context_opened() -> bool:
    return _gl_context_opened


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


def configure_headless_gl() -> str | None:
    """Set `MUJOCO_GL` (and PyOpenGL's platform) when no display is present; returns the backend.

    Must run before `mujoco` / `dm_control` are imported to have an effect. Returns the value
    in force ("egl", "osmesa", a user's own choice) or None when a display is available.
    """
    if "MUJOCO_GL" in os.environ:
        if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
            os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
        return os.environ["MUJOCO_GL"]
    if _has_display():
        return None
    if "mujoco" in sys.modules:
        logger.warning("mujoco was imported before robokit.envs could choose a headless GL backend; "
                       "set MUJOCO_GL=egl (or osmesa) in the environment if rendering fails")
    if ctypes.util.find_library("EGL"):
        backend = "egl"
    elif ctypes.util.find_library("OSMesa"):
        backend = "osmesa"
    else:
        logger.warning("no display and neither libEGL nor libOSMesa found: MuJoCo rendering will fail "
                       "(Debian: apt-get install libegl1 libgl1-mesa-dri, or libosmesa6)")
        return None
    os.environ["MUJOCO_GL"] = backend
    os.environ["PYOPENGL_PLATFORM"] = backend
    logger.debug("no display: MUJOCO_GL=%s", backend)
    return backend


class MujocoCamera:
    """Renders named cameras of one MuJoCo model at a fixed size.

    Args:
        model: the `mujoco.MjModel` (dm_control users pass `physics.model.ptr`).
        height, width: image size in pixels.
        fast: no shadows, no reflections, no multisampling.
    """

    def __init__(self, model, height: int, width: int, fast: bool = False):
        import mujoco

        global _gl_context_opened
        _gl_context_opened = True
        self._mujoco = mujoco
        # The offscreen buffer must hold the image: grow it when asked for more than the model declares.
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
        if fast:
            model.vis.quality.offsamples = 0
        self.height, self.width, self.fast = height, width, fast
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        if fast:
            flags = self._renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def render(self, data, camera: str | int) -> np.ndarray:
        """The image seen by `camera` in state `data` (mujoco.MjData): uint8 (H, W, 3)."""
        self._renderer.update_scene(data, camera=camera)
        if self.fast:
            flags = self._renderer.scene.flags
            flags[self._mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            flags[self._mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render().copy()

    def close(self) -> None:
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is not None:
            renderer.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: the GL context may already be gone
            pass
