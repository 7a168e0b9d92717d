"""`SimRobot`: a simulated env behind the Robot API, so that teleoperation, recording and the
policy server run end to end with no hardware.

    robot = SimRobot(SimRobotConfig(env="aloha_transfer_cube", fast_render=True))
    robot.connect()                                 # builds and resets the env
    obs = robot.get_observation()                   # {"left_arm_waist.pos": 0.0, ..., "top": (H, W, 3)}
    robot.send_action({"left_arm_waist.pos": 0.1, ...})   # steps the env once; returns what was sent
    robot.disconnect()

Hardware convention: each state/action dimension is a `"<name>.pos"` float, each camera a
`(H, W, 3)` image. The env's `observation.environment_state` (object poses: what `robokit demos`
records and env-state policies are trained on) is no joint: it comes separately, as the dataset
feature `environment_state_feature` and the vector `get_environment_state()`, which the policy
client (`serving.RobotIO`) sends along. An episode that ends (success or time limit) is reset on
the next action; `last_info` keeps the last step's reward, termination and success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robokit.robots.robot import DeviceAlreadyConnectedError, DeviceNotConnectedError, Robot, RobotConfig


@dataclass
class SimRobotConfig(RobotConfig):
    env: str = "aloha_transfer_cube"
    """Registered env name (see robokit.envs.available_envs())."""
    seed: int | None = 0
    """Seed of the first episode (the next ones continue its generator)."""
    fast_render: bool = True
    """No shadows or multisampling in MuJoCo images."""
    image_size: tuple[int, int] | None = None
    """(height, width) of camera images (default: the env's)."""
    cameras: tuple[str, ...] | None = None
    """Cameras to render (default: the env's; empty: none, for state-only policies)."""


class SimRobot(Robot):
    """A robot whose body is a simulated env."""

    name = "sim"
    config_class = SimRobotConfig

    def __init__(self, config: SimRobotConfig):
        super().__init__(config)
        from robokit.envs.registry import get_spec

        self.spec = get_spec(config.env)
        self._env = None
        self._obs: dict[str, np.ndarray] | None = None
        self._needs_reset = False
        self.last_info: dict[str, Any] = {}
        self._features = self.spec.features(cameras=config.cameras, image_size=config.image_size)

    @property
    def robot_type(self) -> str:
        return f"sim_{self.spec.name.replace('/', '_')}"

    @staticmethod
    def _hw_name(name: str) -> str:
        return name if name.endswith(".pos") else f"{name}.pos"

    @property
    def observation_features(self) -> dict[str, Any]:
        feats: dict[str, Any] = {self._hw_name(n): float for n in self._features["observation.state"]["names"]}
        for key, ft in self._features.items():
            if key.startswith("observation.images."):
                feats[key.removeprefix("observation.images.")] = tuple(ft["shape"])
        return feats

    @property
    def environment_state_feature(self) -> dict[str, Any]:
        """The dataset feature of `observation.environment_state` ({dtype, shape, names}), as `robokit demos` records it."""
        return dict(self._features["observation.environment_state"])

    def get_environment_state(self):
        """The current `observation.environment_state` vector (float32)."""
        self._require()
        return np.asarray(self._obs["observation.environment_state"], dtype=np.float32)

    @property
    def action_features(self) -> dict[str, Any]:
        return {self._hw_name(n): float for n in self._features["action"]["names"]}

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self, calibrate: bool = True) -> None:
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self} is already connected")
        from robokit.envs.registry import make_single_env

        self._env = make_single_env(self.spec.name, seed=self.config.seed, fast_render=self.config.fast_render,
                                    cameras=self.config.cameras, image_size=self.config.image_size)
        self._obs, _ = self._env.reset()
        self._needs_reset = False

    def _require(self) -> None:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected; call connect() first")

    def get_observation(self) -> dict[str, Any]:
        self._require()
        state_names = [self._hw_name(n) for n in self._features["observation.state"]["names"]]
        obs: dict[str, Any] = {n: float(v) for n, v in zip(state_names, self._obs["observation.state"])}
        for key, value in self._obs.items():
            if key.startswith("observation.images."):
                obs[key.removeprefix("observation.images.")] = value
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        self._require()
        names = list(self.action_features)
        missing = [n for n in names if n not in action]
        if missing:
            raise KeyError(f"SimRobot.send_action: missing {missing}; expected keys {names}")
        vector = np.array([float(action[n]) for n in names], dtype=np.float32)
        space = self._env.action_space
        vector = np.clip(vector, space.low, space.high).astype(np.float32)  # the env's limits are the safety clamp
        if self._needs_reset:
            self._obs, _ = self._env.reset()
            self._needs_reset = False
        self._obs, reward, terminated, truncated, info = self._env.step(vector)
        self.last_info = {"reward": float(reward), "terminated": bool(terminated), "truncated": bool(truncated),
                          "is_success": bool(info.get("is_success", False))}
        self._needs_reset = bool(terminated or truncated)
        return {n: float(v) for n, v in zip(names, vector)}

    def disconnect(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
