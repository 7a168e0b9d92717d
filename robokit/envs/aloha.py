"""ALOHA bimanual tasks (transfer-cube, insertion) from gym-aloha, with robokit feature names.

gym-aloha supplies the MuJoCo scene (two ViperX 300s arms, 14 position-controlled joints) and
the task logic (reward stages 0..4 from contacts; 4 = success). Its own gymnasium env renders
three 480x640 cameras every step and shows one; this env renders only the cameras asked for,
with `MujocoCamera` (optionally without shadows and multisampling), which is what makes it
several times faster on a CPU renderer.

Observation: `observation.state` (14,) joint positions [left arm 6, left gripper (0 closed ..
1 open), right arm 6, right gripper], `observation.environment_state` the object poses
(position + wxyz quaternion per object), `observation.images.<camera>` uint8 (H, W, 3).
Action: (14,) absolute joint targets in the same layout as the state.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np

from robokit.envs.rendering import MujocoCamera, configure_headless_gl

logger = logging.getLogger(__name__)

FPS = 50
"""Control rate: gym-aloha's control timestep is 0.02 s."""

TASKS = {
    "aloha_transfer_cube": "Pick up the red cube with the right arm and hand it over to the left arm.",
    "aloha_insertion": "Pick up the peg with the right arm and the socket with the left arm, and insert the peg into the socket.",
}
OBJECTS = {"aloha_transfer_cube": ("box",), "aloha_insertion": ("peg", "socket")}
CAMERAS = ("top", "angle", "front_close", "left_wrist", "right_wrist", "left_pillar", "right_pillar")


JOINT_NAMES = [f"{side}_arm_{joint}" for side in ("left", "right")
               for joint in ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper")]
"""The 14 joints of the state and action vectors (gym-aloha's order)."""


def env_state_names(name: str) -> list[str]:
    return [f"{obj}.{axis}" for obj in OBJECTS[name] for axis in ("x", "y", "z", "qw", "qx", "qy", "qz")]


def sample_object_poses(name: str, rng: np.random.Generator) -> np.ndarray:
    """Initial object poses, (7,) or (14,): the position ranges of gym-aloha / the ACT paper, upright."""
    upright = np.array([1.0, 0.0, 0.0, 0.0])
    if name == "aloha_transfer_cube":
        pos = rng.uniform([0.0, 0.4, 0.05], [0.2, 0.6, 0.05])
        return np.concatenate([pos, upright])
    peg = rng.uniform([0.1, 0.4, 0.05], [0.2, 0.6, 0.05])
    socket = rng.uniform([-0.2, 0.4, 0.05], [-0.1, 0.6, 0.05])
    return np.concatenate([peg, upright, socket, upright])


def _task_class(name: str):
    """gym-aloha's task with image rendering removed from its observation (we render ourselves)."""
    from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask

    base = TransferCubeTask if name == "aloha_transfer_cube" else InsertionTask

    class _NoImageTask(base):
        def get_observation(self, physics):
            return {"qpos": self.get_qpos(physics), "env_state": self.get_env_state(physics)}

    return _NoImageTask


class AlohaEnv(gym.Env):
    """One ALOHA task. Use `robokit.envs.make_env("aloha_transfer_cube")` rather than this class.

    Args:
        name: "aloha_transfer_cube" or "aloha_insertion".
        cameras: cameras to render into `observation.images.<camera>`; empty for none.
        image_size: (height, width) of every camera image.
        fast_render: no shadows, reflections or multisampling.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, name: str = "aloha_transfer_cube", cameras: tuple[str, ...] = ("top",),
                 image_size: tuple[int, int] = (480, 640), fast_render: bool = False,
                 render_mode: str = "rgb_array"):
        if name not in TASKS:
            raise ValueError(f"AlohaEnv: name={name!r}, expected one of {sorted(TASKS)}")
        bad = [c for c in cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"AlohaEnv: cameras={list(cameras)} holds unknown {bad}, expected names from {list(CAMERAS)}")
        configure_headless_gl()
        from dm_control import mujoco as dm_mujoco
        from dm_control.rl import control
        from gym_aloha.constants import ASSETS_DIR, DT

        self.name, self.cameras, self.image_size = name, tuple(cameras), tuple(image_size)
        self.render_mode = render_mode
        xml = "bimanual_viperx_transfer_cube.xml" if name == "aloha_transfer_cube" else "bimanual_viperx_insertion.xml"
        physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / xml))
        self._env = control.Environment(physics, _task_class(name)(), time_limit=float("inf"),
                                        control_timestep=DT, flat_observation=False)
        self.physics = physics
        self._fast = fast_render
        self._camera: MujocoCamera | None = None
        self.max_reward = 4

        model = physics.model
        arm_low, arm_high = model.actuator_ctrlrange[[0, 1, 2, 3, 4, 5], 0], model.actuator_ctrlrange[[0, 1, 2, 3, 4, 5], 1]
        low = np.concatenate([arm_low, [0.0], arm_low, [0.0]]).astype(np.float32)
        high = np.concatenate([arm_high, [1.0], arm_high, [1.0]]).astype(np.float32)
        self.action_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        n_env = 7 * len(OBJECTS[name])
        spaces: dict[str, gym.Space] = {
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (14,), np.float32),
            "observation.environment_state": gym.spaces.Box(-np.inf, np.inf, (n_env,), np.float32),
        }
        for cam in self.cameras:
            spaces[f"observation.images.{cam}"] = gym.spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    # -- rendering -----------------------------------------------------------------------------
    def _render_camera(self, camera: str) -> np.ndarray:
        if self._camera is None:
            self._camera = MujocoCamera(self.physics.model.ptr, *self.image_size, fast=self._fast)
        return self._camera.render(self.physics.data.ptr, camera)

    def render(self) -> np.ndarray:
        """The first camera (or "top"), for videos."""
        return self._render_camera(self.cameras[0] if self.cameras else "top")

    def _observation(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        obs = {
            "observation.state": np.asarray(raw["qpos"], dtype=np.float32),
            "observation.environment_state": np.asarray(raw["env_state"], dtype=np.float32),
        }
        for cam in self.cameras:
            obs[f"observation.images.{cam}"] = self._render_camera(cam)
        return obs

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        from gym_aloha.tasks import sim

        # gym-aloha's tasks read the initial object poses from this module-level slot at reset.
        sim.BOX_POSE[0] = sample_object_poses(self.name, self.np_random)
        timestep = self._env.reset()
        self._last_raw = timestep.observation
        return self._observation(timestep.observation), {"is_success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (14,):
            raise ValueError(f"AlohaEnv.step: action has shape {action.shape}, expected (14,)")
        from dm_control.rl.control import PhysicsError

        try:
            timestep = self._env.step(action)
        except PhysicsError as err:
            # Wild actions (e.g. random joint targets across the whole range) can blow the
            # simulation up; end the episode there instead of crashing a batch of rollouts.
            logger.warning("AlohaEnv(%s): unstable physics (%s); episode truncated", self.name, err)
            return self._observation(self._last_raw), 0.0, False, True, {"is_success": False, "physics_error": True}
        self._last_raw = timestep.observation
        reward = float(timestep.reward or 0.0)
        success = reward >= self.max_reward
        return self._observation(timestep.observation), reward, success, False, {"is_success": success}

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
