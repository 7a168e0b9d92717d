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

MT10: tuple[str, ...] = (
    "reach", "push", "pick-place", "door-open", "drawer-open", "drawer-close", "button-press-topdown",
    "peg-insert-side", "window-open", "window-close",
)
"""The ten tasks of Meta-World's MT10 benchmark (`metaworld.MT10`), in the package's order."""

# One plain-language instruction per task: what a language-conditioned policy is told, and the
# `task` string of every recorded frame. Written from what each task's success criterion checks.
INSTRUCTIONS: dict[str, str] = {
    "assembly": "Pick up the ring and put it onto the peg.",
    "basketball": "Pick up the ball and dunk it into the basket.",
    "bin-picking": "Move the puck from the red bin into the blue bin.",
    "box-close": "Pick up the lid and put it on the box.",
    "button-press": "Press the button from the front.",
    "button-press-topdown": "Press the button down from the top.",
    "button-press-topdown-wall": "Press the button down from the top, behind the wall.",
    "button-press-wall": "Press the button from the front, reaching past the wall.",
    "coffee-button": "Press the button on the coffee machine.",
    "coffee-pull": "Pull the mug away from the coffee machine.",
    "coffee-push": "Push the mug under the coffee machine.",
    "dial-turn": "Turn the dial.",
    "disassemble": "Lift the ring off the peg.",
    "door-close": "Close the door.",
    "door-lock": "Turn the lock to lock the door.",
    "door-open": "Open the door.",
    "door-unlock": "Turn the lock to unlock the door.",
    "drawer-close": "Close the drawer.",
    "drawer-open": "Open the drawer.",
    "faucet-close": "Turn the faucet handle to close the faucet.",
    "faucet-open": "Turn the faucet handle to open the faucet.",
    "hammer": "Pick up the hammer and hammer the nail into the wall.",
    "hand-insert": "Push the puck into the hole in the table.",
    "handle-press": "Press the handle down.",
    "handle-press-side": "Press the handle down from the side.",
    "handle-pull": "Pull the handle up.",
    "handle-pull-side": "Pull the handle up from the side.",
    "lever-pull": "Pull the lever up.",
    "peg-insert-side": "Pick up the peg and insert it sideways into the hole.",
    "peg-unplug-side": "Pull the peg out of the hole sideways.",
    "pick-out-of-hole": "Pick the peg up out of the hole.",
    "pick-place": "Pick up the puck and place it at the goal.",
    "pick-place-wall": "Pick up the puck, lift it over the wall and place it at the goal.",
    "plate-slide": "Slide the plate into the cabinet.",
    "plate-slide-back": "Slide the plate back out of the cabinet.",
    "plate-slide-back-side": "Slide the plate sideways out of the cabinet.",
    "plate-slide-side": "Slide the plate sideways into the cabinet.",
    "push": "Push the puck to the goal.",
    "push-back": "Pull the puck back to the goal.",
    "push-wall": "Push the puck around the wall to the goal.",
    "reach": "Reach the goal with the gripper.",
    "reach-wall": "Reach over the wall to the goal with the gripper.",
    "shelf-place": "Pick up the puck and place it on the shelf.",
    "soccer": "Push the ball into the goal.",
    "stick-pull": "Grasp the stick and pull the box with it.",
    "stick-push": "Grasp the stick and push the box with it.",
    "sweep": "Sweep the puck off the table.",
    "sweep-into": "Sweep the puck into the hole.",
    "window-close": "Slide the window closed.",
    "window-open": "Slide the window open.",
}


def task_description(task: str) -> str:
    """The plain-language instruction of an MT50 task, e.g. "Open the drawer." for "drawer-open"."""
    if task not in INSTRUCTIONS:
        raise ValueError(f"task_description: task={task!r} is not an MT50 task; expected one of {sorted(INSTRUCTIONS)}")
    return INSTRUCTIONS[task]


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
