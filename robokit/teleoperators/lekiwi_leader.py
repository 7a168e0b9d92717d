"""LeKiwi's teleoperator: an SO-101 leader arm for the arm plus the keyboard for the base."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robokit.robots.servo_arm import ServoLeaderConfig
from robokit.robots.so101 import SO101Leader
from robokit.teleoperators.keyboard import KeyboardTeleop, KeyboardTeleopConfig
from robokit.teleoperators.teleoperator import Teleoperator


@dataclass
class LeKiwiLeaderConfig(ServoLeaderConfig):
    use_pynput: bool = True
    """Read base keys with pynput (needs a display)."""


class LeKiwiLeader(Teleoperator):
    name = "lekiwi_leader"
    config_class = LeKiwiLeaderConfig

    def __init__(self, config: LeKiwiLeaderConfig):
        super().__init__(config)
        self.arm = SO101Leader(
            ServoLeaderConfig(
                id=config.id,
                calibration_dir=config.calibration_dir,
                port=config.port,
                use_degrees=config.use_degrees,
            )
        )
        self.keyboard = KeyboardTeleop(
            KeyboardTeleopConfig(id=config.id, mode="base", use_pynput=config.use_pynput)
        )

    @property
    def action_features(self) -> dict[str, Any]:
        return {
            **{f"arm_{k}": v for k, v in self.arm.action_features.items()},
            **self.keyboard.action_features,
        }

    @property
    def is_connected(self) -> bool:
        return self.arm.is_connected and self.keyboard.is_connected

    @property
    def is_calibrated(self) -> bool:
        return self.arm.is_calibrated

    def connect(self, calibrate: bool = True) -> None:
        self.arm.connect(calibrate)
        self.keyboard.connect()

    def calibrate(self) -> None:
        self.arm.calibrate()

    def get_action(self) -> dict[str, float]:
        return {**{f"arm_{k}": v for k, v in self.arm.get_action().items()}, **self.keyboard.get_action()}

    def disconnect(self) -> None:
        self.keyboard.disconnect()
        if self.arm.is_connected:
            self.arm.disconnect()
