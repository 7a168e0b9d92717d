"""Pollen Robotics Reachy 2 through its vendor SDK, `reachy2_sdk` (optional), over the network.

Features: the 7 joints of each arm, each gripper, the neck (degrees, as the SDK), and the mobile
base velocities `x.vel`, `y.vel` (m/s), `theta.vel` (deg/s). The SDK moves joints when
`send_goal_positions()` is called after goals are set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robokit.cameras.camera import Camera, CameraConfig, make_camera
from robokit.robots.robot import DeviceAlreadyConnectedError, DeviceNotConnectedError, Robot, RobotConfig
from robokit.robots.servo_arm import clamp_relative

_ARM = [
    "shoulder.pitch",
    "shoulder.roll",
    "elbow.yaw",
    "elbow.pitch",
    "wrist.roll",
    "wrist.pitch",
    "wrist.yaw",
]
# feature -> attribute path on the SDK object
JOINTS: dict[str, str] = {
    **{f"{side}_{path.replace('.', '_')}.pos": f"{side}_arm.{path}" for side in ("r", "l") for path in _ARM},
    "r_gripper.pos": "r_arm.gripper",
    "l_gripper.pos": "l_arm.gripper",
    "neck_roll.pos": "head.neck.roll",
    "neck_pitch.pos": "head.neck.pitch",
    "neck_yaw.pos": "head.neck.yaw",
}
BASE = ("x.vel", "y.vel", "theta.vel")


@dataclass
class Reachy2Config(RobotConfig):
    ip_address: str = "localhost"
    """Address of the Reachy 2 robot."""
    with_mobile_base: bool = True
    """Drive the mobile base (x.vel, y.vel, theta.vel features)."""
    max_relative_target: float | None = None
    """Largest step per command and joint (degrees); None: no clamp."""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Extra cameras by name."""


class Reachy2(Robot):
    name = "reachy2"
    config_class = Reachy2Config

    def __init__(self, config: Reachy2Config):
        super().__init__(config)
        self.config: Reachy2Config = config
        self.reachy = None
        self.cameras: dict[str, Camera] = {n: make_camera(c) for n, c in config.cameras.items()}

    @property
    def action_features(self) -> dict[str, Any]:
        base = {k: float for k in BASE} if self.config.with_mobile_base else {}
        return {**{k: float for k in JOINTS}, **base}

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**self.action_features, **{n: c.shape for n, c in self.cameras.items()}}

    @property
    def is_connected(self) -> bool:
        return self.reachy is not None

    def _joint(self, key: str):
        node = self.reachy
        for part in JOINTS[key].split("."):
            node = getattr(node, part)
        return node

    def connect(self, calibrate: bool = True) -> None:
        if self.reachy is not None:
            raise DeviceAlreadyConnectedError(f"{self!r} is already connected")
        try:
            from reachy2_sdk import ReachySDK
        except ImportError as exc:
            raise ImportError(
                "Reachy 2 needs Pollen Robotics' SDK: pip install reachy2-sdk (it pins grpcio 1.73 and protobuf 6, "
                "older than robokit's serving extra: use an environment without robokit[serving] for it)"
            ) from exc
        reachy = ReachySDK(host=self.config.ip_address)
        if not reachy.is_connected():
            raise ConnectionError(f"{self!r}: could not reach Reachy 2 at {self.config.ip_address}")
        reachy.turn_on()
        self.reachy = reachy
        for cam in self.cameras.values():
            cam.connect()

    def _present(self) -> dict[str, float]:
        out = {key: float(self._joint(key).present_position) for key in JOINTS}
        if self.config.with_mobile_base:
            odometry = self.reachy.mobile_base.odometry
            out.update(
                {
                    "x.vel": float(odometry["vx"]),
                    "y.vel": float(odometry["vy"]),
                    "theta.vel": float(odometry["vtheta"]),
                }
            )
        return out

    def get_observation(self) -> dict[str, Any]:
        if self.reachy is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        obs: dict[str, Any] = self._present()
        for name, cam in self.cameras.items():
            obs[name] = cam.async_read()
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if self.reachy is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        unknown = set(action) - set(self.action_features)
        if unknown:
            raise KeyError(f"{self!r}.send_action: unknown action keys {sorted(unknown)}")
        goal = {k: float(v) for k, v in action.items() if k in JOINTS}
        if goal and self.config.max_relative_target is not None:
            goal = clamp_relative(goal, self._present(), self.config.max_relative_target)
        for key, value in goal.items():
            self._joint(key).goal_position = value
        self.reachy.send_goal_positions()
        sent = dict(goal)
        if self.config.with_mobile_base and any(k in action for k in BASE):
            sent.update({k: float(action.get(k, 0.0)) for k in BASE})
            self.reachy.mobile_base.set_goal_speed(sent["x.vel"], sent["y.vel"], sent["theta.vel"])
            self.reachy.mobile_base.send_speed_command()
        return sent

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            cam.disconnect()
        if self.reachy is not None:
            self.reachy.turn_off_smoothly()
            self.reachy.disconnect()
            self.reachy = None
