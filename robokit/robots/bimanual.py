"""Two arms as one robot (or one teleoperator): features are prefixed "left_" / "right_".

Bimanual SO-101 pairs two SO-101 followers (leaders); ALOHA-2 (`robokit.robots.aloha`) pairs two
ViperX followers (WidowX leaders). Each arm keeps its own bus and calibration file
(`<id>_left`, `<id>_right`); cameras belong to the pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robokit.cameras.camera import Camera, CameraConfig, make_camera
from robokit.robots.robot import Robot, RobotConfig
from robokit.robots.servo_arm import ServoArmConfig, ServoArmFollower, ServoArmLeader, ServoLeaderConfig
from robokit.robots.so101 import SO101Follower, SO101Leader
from robokit.teleoperators.teleoperator import Teleoperator, TeleoperatorConfig

SIDES = ("left", "right")


@dataclass
class BimanualConfig(RobotConfig):
    left_port: str = ""
    """Servo bus port of the left arm."""
    right_port: str = ""
    """Servo bus port of the right arm."""
    disable_torque_on_disconnect: bool = True
    """Release torque when disconnecting."""
    max_relative_target: float | None = None
    """Largest step per command and joint (normalized units); None: no clamp."""
    use_degrees: bool = False
    """Joints in degrees instead of -100..100."""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Cameras of the pair, by name."""


@dataclass
class BimanualLeaderConfig(TeleoperatorConfig):
    left_port: str = ""
    """Servo bus port of the left leader arm."""
    right_port: str = ""
    """Servo bus port of the right leader arm."""
    use_degrees: bool = False
    """Joints in degrees instead of -100..100."""


def _split(action: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {side: {} for side in SIDES}
    for key, value in action.items():
        side, _, rest = key.partition("_")
        if side not in out or not rest:
            raise KeyError(f"bimanual action key {key!r}: expected a 'left_' or 'right_' prefix")
        out[side][rest] = value
    return out


class BimanualFollower(Robot):
    config_class = BimanualConfig
    arm_class: type[ServoArmFollower]

    def __init__(self, config: BimanualConfig):
        super().__init__(config)
        self.config: BimanualConfig = config
        self.arms: dict[str, ServoArmFollower] = {}
        for side in SIDES:
            arm_cfg = ServoArmConfig(
                id=f"{config.id}_{side}",
                calibration_dir=config.calibration_dir,
                port=getattr(config, f"{side}_port"),
                disable_torque_on_disconnect=config.disable_torque_on_disconnect,
                max_relative_target=config.max_relative_target,
                use_degrees=config.use_degrees,
            )
            self.arms[side] = self.arm_class(arm_cfg)
        self.cameras: dict[str, Camera] = {name: make_camera(cfg) for name, cfg in config.cameras.items()}

    @property
    def observation_features(self) -> dict[str, Any]:
        joints = {f"{side}_{k}": v for side, arm in self.arms.items() for k, v in arm.action_features.items()}
        return {**joints, **{name: cam.shape for name, cam in self.cameras.items()}}

    @property
    def action_features(self) -> dict[str, Any]:
        return {f"{side}_{k}": v for side, arm in self.arms.items() for k, v in arm.action_features.items()}

    @property
    def action_limits(self) -> dict[str, tuple[float, float]]:
        return {f"{side}_{k}": v for side, arm in self.arms.items() for k, v in arm.action_limits.items()}

    @property
    def is_connected(self) -> bool:
        return all(arm.is_connected for arm in self.arms.values()) and all(
            c.is_connected for c in self.cameras.values()
        )

    @property
    def is_calibrated(self) -> bool:
        return all(arm.is_calibrated for arm in self.arms.values())

    def connect(self, calibrate: bool = True) -> None:
        try:
            for arm in self.arms.values():
                arm.connect(calibrate)
            for cam in self.cameras.values():
                cam.connect()
        except BaseException:
            self.disconnect()
            raise

    def calibrate(self) -> None:
        for arm in self.arms.values():
            arm.calibrate()

    def get_observation(self) -> dict[str, Any]:
        obs = {f"{side}_{k}": v for side, arm in self.arms.items() for k, v in arm.get_observation().items()}
        for name, cam in self.cameras.items():
            obs[name] = cam.async_read()
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        parts = _split(action)
        return {
            f"{side}_{k}": v
            for side, arm in self.arms.items()
            for k, v in arm.send_action(parts[side]).items()
        }

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            cam.disconnect()
        for arm in self.arms.values():
            if arm.bus.is_connected:
                arm.disconnect()


class BimanualLeader(Teleoperator):
    config_class = BimanualLeaderConfig
    arm_class: type[ServoArmLeader]

    def __init__(self, config: BimanualLeaderConfig):
        super().__init__(config)
        self.arms: dict[str, ServoArmLeader] = {
            side: self.arm_class(
                ServoLeaderConfig(
                    id=f"{config.id}_{side}",
                    calibration_dir=config.calibration_dir,
                    port=getattr(config, f"{side}_port"),
                    use_degrees=config.use_degrees,
                )
            )
            for side in SIDES
        }

    @property
    def action_features(self) -> dict[str, Any]:
        return {f"{side}_{k}": v for side, arm in self.arms.items() for k, v in arm.action_features.items()}

    @property
    def is_connected(self) -> bool:
        return all(arm.is_connected for arm in self.arms.values())

    @property
    def is_calibrated(self) -> bool:
        return all(arm.is_calibrated for arm in self.arms.values())

    def connect(self, calibrate: bool = True) -> None:
        try:
            for arm in self.arms.values():
                arm.connect(calibrate)
        except BaseException:
            self.disconnect()
            raise

    def calibrate(self) -> None:
        for arm in self.arms.values():
            arm.calibrate()

    def get_action(self) -> dict[str, Any]:
        return {f"{side}_{k}": v for side, arm in self.arms.items() for k, v in arm.get_action().items()}

    def disconnect(self) -> None:
        for arm in self.arms.values():
            if arm.bus.is_connected:
                arm.disconnect()


class BimanualSO101Follower(BimanualFollower):
    name = "bi_so101_follower"
    arm_class = SO101Follower


class BimanualSO101Leader(BimanualLeader):
    name = "bi_so101_leader"
    arm_class = SO101Leader
