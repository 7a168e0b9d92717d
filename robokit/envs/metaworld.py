"""Meta-World (the MT50 tasks, v3) with robokit feature names, and the MT50 difficulty groups.

A Sawyer arm moved by end-effector deltas: action (4,) = [dx, dy, dz, gripper] in [-1, 1].
Each reset draws new object and goal positions from the env's own generator (seeded by
`reset(seed=...)`), with the goal visible in the observation.

Observation: `observation.state` (4,) hand position + gripper opening, `observation.environment_state`
(39,) Meta-World's full observation (hand, gripper, two objects, the previous frame of those,
goal), `observation.images.<camera>` (H, W, 3) uint8 (camera "corner2" by default).
Success is Meta-World's `info["success"]`; the episode terminates on it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from robokit.envs.rendering import MujocoCamera, configure_headless_gl

FPS = 80
"""Meta-World steps 5 physics frames of 2.5 ms per action."""

CAMERAS = ("corner", "corner2", "corner3", "topview", "gripperPOV", "behindGripper")

# The difficulty groups of the MT50 tasks used in the literature (Seo et al. 2022, "Masked
# World Models"; also LeRobot's Meta-World benchmark): 28 easy, 11 medium, 6 hard, 5 very hard.
DIFFICULTY_GROUPS: dict[str, tuple[str, ...]] = {
    "easy": (
        "button-press", "button-press-topdown", "button-press-topdown-wall", "button-press-wall",
        "coffee-button", "dial-turn", "door-close", "door-lock", "door-open", "door-unlock",
        "drawer-close", "drawer-open", "faucet-close", "faucet-open", "handle-press", "handle-press-side",
        "handle-pull", "handle-pull-side", "lever-pull", "plate-slide", "plate-slide-back",
        "plate-slide-back-side", "plate-slide-side", "reach", "reach-wall", "window-close", "window-open",
        "peg-unplug-side",
    ),
    "medium": (
        "basketball", "bin-picking", "box-close", "coffee-pull", "coffee-push", "hammer", "peg-insert-side",
        "push-wall", "soccer", "sweep", "sweep-into",
    ),
    "hard": ("assembly", "hand-insert", "pick-out-of-hole", "pick-place", "push", "push-back"),
    "very_hard": ("shelf-place", "disassemble", "stick-pull", "stick-push", "pick-place-wall"),
}
TASK_NAMES: tuple[str, ...] = tuple(t for group in DIFFICULTY_GROUPS.values() for t in group)


def task_description(task: str) -> str:
    return task.replace("-", " ").capitalize() + "."


def state_names() -> list[str]:
    return ["hand.x", "hand.y", "hand.z", "gripper"]


def environment_state_names() -> list[str]:
    frame = ["hand.x", "hand.y", "hand.z", "gripper"] + [f"obj{i}.{a}" for i in (1, 2) for a in ("x", "y", "z", "qw", "qx", "qy", "qz")]
    return frame + [f"prev.{n}" for n in frame] + ["goal.x", "goal.y", "goal.z"]


class MetaWorldEnv(gym.Env):
    """One Meta-World task. Use `robokit.envs.make_env("metaworld/<task>")` rather than this class.

    Args:
        task: an MT50 task name without version, e.g. "push" or "door-open".
        cameras: cameras to render into `observation.images.<camera>`.
        image_size: (height, width) of every camera image.
        fast_render: no shadows, reflections or multisampling.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, task: str = "reach", cameras: tuple[str, ...] = ("corner2",),
                 image_size: tuple[int, int] = (480, 480), fast_render: bool = False,
                 render_mode: str = "rgb_array"):
        if task not in TASK_NAMES:
            raise ValueError(f"MetaWorldEnv: task={task!r} is not an MT50 task; expected one of {list(TASK_NAMES)}")
        bad = [c for c in cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"MetaWorldEnv: cameras={list(cameras)} holds unknown {bad}, expected names from {list(CAMERAS)}")
        configure_headless_gl()
        import metaworld

        self.task, self.cameras, self.image_size = task, tuple(cameras), tuple(image_size)
        self.render_mode = render_mode
        benchmark = metaworld.MT1(f"{task}-v3", seed=0)
        env = benchmark.train_classes[f"{task}-v3"]()
        env.set_task(benchmark.train_tasks[0])  # goal-observable task settings
        # Draw a fresh object/goal layout at each reset from the env's seeded generator.
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        self._env = env
        self.max_path_length = int(env.max_path_length)
        self._fast = fast_render
        self._camera: MujocoCamera | None = None
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        spaces: dict[str, gym.Space] = {
            "observation.state": gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
            "observation.environment_state": gym.spaces.Box(-np.inf, np.inf, (39,), np.float32),
        }
        for cam in self.cameras:
            spaces[f"observation.images.{cam}"] = gym.spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def _render_camera(self, camera: str) -> np.ndarray:
        if self._camera is None:
            self._camera = MujocoCamera(self._env.model, *self.image_size, fast=self._fast)
        image = self._camera.render(self._env.data, camera)
        # Meta-World's corner cameras are mounted upside down: turn their images right way up.
        return np.ascontiguousarray(image[::-1, ::-1]) if camera.startswith("corner") else image

    def render(self) -> np.ndarray:
        return self._render_camera(self.cameras[0] if self.cameras else "corner2")

    def _observation(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        obs = {
            "observation.state": np.asarray(raw[:4], dtype=np.float32),
            "observation.environment_state": np.asarray(raw, dtype=np.float32),
        }
        for cam in self.cameras:
            obs[f"observation.images.{cam}"] = self._render_camera(cam)
        return obs

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._env.seed(int(self.np_random.integers(2**31)))
        raw, _ = self._env.reset()
        return self._observation(raw), {"is_success": False}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(-1), -1.0, 1.0)
        if action.shape != (4,):
            raise ValueError(f"MetaWorldEnv.step: action has shape {action.shape}, expected (4,)")
        raw, reward, _, truncated, info = self._env.step(action)
        success = bool(info.get("success", 0.0))
        return self._observation(raw), float(reward), success, bool(truncated), {"is_success": success}

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        self._env.close()
