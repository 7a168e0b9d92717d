"""PushT (gym-pusht) with robokit feature names.

A round agent (the action is its target position in a 512x512 workspace, tracked by a PD
controller) pushes a T-shaped block onto a fixed T-shaped target. Reward is the target
coverage / 0.95, clipped to 1; success (and termination) is coverage > 95%.

Observation: `observation.state` (2,) agent position, `observation.environment_state` (16,)
the block's 8 keypoints [x0, y0, ..., x7, y7] (see `keypoint_names`), and
`observation.images.top` (H, W, 3) uint8 (96x96 by default, as in the Diffusion Policy paper).
"""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np

FPS = 10
TASK = "Push the T-shaped block onto the T-shaped target."
GOAL_POSE = (256.0, 256.0, np.pi / 4)
"""(x, y, angle) of the target, fixed by gym-pusht."""


def keypoint_names() -> list[str]:
    return [f"keypoint_{i}.{axis}" for i in range(8) for axis in ("x", "y")]


class PushTEnv(gym.Env):
    """PushT. Use `robokit.envs.make_env("pusht")` rather than this class.

    Args:
        cameras: ("top",) to render the image observation, () for none.
        image_size: (height, width) of the image observation.
        fast_render: accepted for a uniform API; PushT's 2-D drawing has no costly effects.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, cameras: tuple[str, ...] = ("top",), image_size: tuple[int, int] = (96, 96),
                 fast_render: bool = False, render_mode: str = "rgb_array"):
        if any(c != "top" for c in cameras):
            raise ValueError(f"PushTEnv: cameras={list(cameras)}, PushT has one camera: 'top'")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        from gym_pusht.envs.pusht import PushTEnv as _PushT

        self.cameras, self.image_size, self.render_mode = tuple(cameras), tuple(image_size), render_mode
        height, width = self.image_size
        self._env = _PushT(obs_type="environment_state_agent_pos", render_mode="rgb_array",
                           observation_width=width, observation_height=height)
        self.action_space = gym.spaces.Box(low=0.0, high=512.0, shape=(2,), dtype=np.float32)
        spaces: dict[str, gym.Space] = {
            "observation.state": gym.spaces.Box(0.0, 512.0, (2,), np.float32),
            "observation.environment_state": gym.spaces.Box(-np.inf, np.inf, (16,), np.float32),
        }
        if self.cameras:
            spaces["observation.images.top"] = gym.spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def _observation(self, raw: dict) -> dict[str, np.ndarray]:
        obs = {
            "observation.state": np.asarray(raw["agent_pos"], dtype=np.float32),
            "observation.environment_state": np.asarray(raw["environment_state"], dtype=np.float32),
        }
        if self.cameras:
            obs["observation.images.top"] = self._env._render(visualize=False)
        return obs

    def render(self) -> np.ndarray:
        """The top view at the observation size, with the last action marked."""
        height, width = self.image_size
        return self._env._get_img(self._env._draw(), width=width, height=height, render_action=True)

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        # gym-pusht draws the initial state from its own generator: seed it from ours.
        raw, info = self._env.reset(seed=int(self.np_random.integers(2**31)), options=options)
        return self._observation(raw), {"is_success": False, "coverage": float(self._env._get_coverage())}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,):
            raise ValueError(f"PushTEnv.step: action has shape {action.shape}, expected (2,)")
        raw, reward, terminated, truncated, info = self._env.step(action)
        success = bool(info["is_success"])
        return self._observation(raw), float(reward), success, False, {"is_success": success, "coverage": float(info["coverage"])}

    def close(self) -> None:
        self._env.close()
