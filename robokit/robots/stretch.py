"""Hello Robot Stretch 3 through its vendor SDK, `stretch_body` (optional; install it on the robot).

Features: `head_pan.pos`, `head_tilt.pos` (rad), `lift.pos`, `arm.pos` (m), `wrist_yaw.pos` (rad),
`gripper.pos` (the SDK's gripper units), and base velocities `x.vel` (m/s), `theta.vel` (rad/s).
Stretch calibrates itself by homing (`robot.home()`); "calibrated" means homed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robokit.cameras.camera import Camera, CameraConfig, make_camera
from robokit.robots.robot import (
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    NotCalibratedError,
    Robot,
    RobotConfig,
)
from robokit.robots.servo_arm import clamp_relative

# feature -> (status path, command) ; commands are applied by `_command`
JOINTS = {
    "head_pan.pos": ("head", "head_pan"),
    "head_tilt.pos": ("head", "head_tilt"),
    "lift.pos": ("lift", None),
    "arm.pos": ("arm", None),
    "wrist_yaw.pos": ("end_of_arm", "wrist_yaw"),
    "gripper.pos": ("end_of_arm", "stretch_gripper"),
}
BASE = ("x.vel", "theta.vel")


@dataclass
class Stretch3Config(RobotConfig):
    max_relative_target: float | None = None
    """Largest step per command and joint (SDK units); None: no clamp."""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Cameras by name (Stretch's head camera is a RealSense: type "realsense")."""


class Stretch3(Robot):
    name = "stretch3"
    config_class = Stretch3Config

    def __init__(self, config: Stretch3Config):
        super().__init__(config)
        self.config: Stretch3Config = config
        self.robot = None
        self.cameras: dict[str, Camera] = {n: make_camera(c) for n, c in config.cameras.items()}

    @property
    def action_features(self) -> dict[str, Any]:
        return {**{k: float for k in JOINTS}, **{k: float for k in BASE}}

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**self.action_features, **{n: c.shape for n, c in self.cameras.items()}}

    @property
    def is_connected(self) -> bool:
        return self.robot is not None

    @property
    def is_calibrated(self) -> bool:
        return self.robot is not None and bool(self.robot.is_homed())

    def connect(self, calibrate: bool = True) -> None:
        if self.robot is not None:
            raise DeviceAlreadyConnectedError(f"{self!r} is already connected")
        try:
            import stretch_body.robot
        except ImportError as exc:
            raise ImportError(
                "Stretch 3 needs Hello Robot's SDK (installed on the robot): pip install hello-robot-stretch-body "
                "(its PyAudio dependency builds against the system package portaudio19-dev)"
            ) from exc
        robot = stretch_body.robot.Robot()
        if not robot.startup():
            raise ConnectionError(
                f"{self!r}: stretch_body could not start the robot (is another process using it?)"
            )
        self.robot = robot
        if not robot.is_homed() and calibrate:
            self.calibrate()
        for cam in self.cameras.values():
            cam.connect()

    def calibrate(self) -> None:
        self.robot.home()

    def _present(self) -> dict[str, float]:
        status = self.robot.get_status()
        out = {}
        for key, (part, joint) in JOINTS.items():
            node = status[part] if joint is None else status[part][joint]
            out[key] = float(node["pos"])
        out["x.vel"] = float(status["base"]["x_vel"])
        out["theta.vel"] = float(status["base"]["theta_vel"])
        return out

    def get_observation(self) -> dict[str, Any]:
        if self.robot is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        obs: dict[str, Any] = self._present()
        for name, cam in self.cameras.items():
            obs[name] = cam.async_read()
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if self.robot is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        if not self.is_calibrated:
            raise NotCalibratedError(
                f"{self!r} is not homed; refusing to move. Run `robokit calibrate --type stretch3`"
            )
        unknown = set(action) - set(self.action_features)
        if unknown:
            raise KeyError(f"{self!r}.send_action: unknown action keys {sorted(unknown)}")
        goal = {k: float(v) for k, v in action.items() if k in JOINTS}
        if goal and self.config.max_relative_target is not None:
            goal = clamp_relative(goal, self._present(), self.config.max_relative_target)
        for key, value in goal.items():
            part, joint = JOINTS[key]
            target = getattr(self.robot, part)
            target.move_to(value) if joint is None else target.move_to(joint, value)
        sent = dict(goal)
        if any(k in action for k in BASE):
            sent.update({k: float(action.get(k, 0.0)) for k in BASE})
            self.robot.base.set_velocity(sent["x.vel"], sent["theta.vel"])
        self.robot.push_command()
        return sent

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            cam.disconnect()
        if self.robot is not None:
            self.robot.stop()
            self.robot = None
