"""ALOHA-2 (Google DeepMind / Stanford): two ViperX 300 S followers and two WidowX 250 S leaders
(Trossen Robotics, Dynamixel X series, protocol 2.0), four cameras.

The shoulder and elbow of these arms are driven by two motors each: a "shadow" motor, mounted
mirrored, follows the primary. Shadows are not features: a command to `shoulder.pos` also drives
`shoulder_shadow` (its calibration has `drive_mode = 1`, so the same normalized goal mirrors it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robokit.cameras.camera import CameraConfig
from robokit.motors.calibration import save_calibration
from robokit.motors.dynamixel import DynamixelMotorsBus
from robokit.robots.bimanual import BimanualConfig, BimanualFollower, BimanualLeader
from robokit.robots.servo_arm import ServoArmFollower, ServoArmLeader

VIPERX_LAYOUT = {
    "waist": (1, "xm540-w270"),
    "shoulder": (2, "xm540-w270"),
    "shoulder_shadow": (3, "xm540-w270"),
    "elbow": (4, "xm540-w270"),
    "elbow_shadow": (5, "xm540-w270"),
    "forearm_roll": (6, "xm540-w270"),
    "wrist_angle": (7, "xm540-w270"),
    "wrist_rotate": (8, "xm430-w350"),
    "gripper": (9, "xm430-w350"),
}
WIDOWX_LAYOUT = {
    "waist": (1, "xm430-w350"),
    "shoulder": (2, "xm430-w350"),
    "shoulder_shadow": (3, "xm430-w350"),
    "elbow": (4, "xm430-w350"),
    "elbow_shadow": (5, "xm430-w350"),
    "forearm_roll": (6, "xm430-w350"),
    "wrist_angle": (7, "xm430-w350"),
    "wrist_rotate": (8, "xl430-w250"),
    "gripper": (9, "xc430-w150"),
}
SHADOWS = {"shoulder_shadow": "shoulder", "elbow_shadow": "elbow"}


class _ShadowMixin:
    """Joint features without the shadow motors; shadows get the primary's goal."""

    full_turn_motors = ("waist", "forearm_roll", "wrist_rotate")
    mirrored_motors = tuple(SHADOWS)

    @property
    def action_features(self) -> dict[str, Any]:
        return {f"{m}.pos": float for m in self.layout if m not in SHADOWS}

    def _joint_positions(self) -> dict[str, float]:
        return {k: v for k, v in super()._joint_positions().items() if k[:-4] not in SHADOWS}

    def calibrate(self) -> None:
        super().calibrate()
        for shadow in SHADOWS:  # mounted mirrored
            self.bus.calibration[shadow].drive_mode = 1
        save_calibration(self.calibration_fpath, self.bus.calibration)


class ViperXFollower(_ShadowMixin, ServoArmFollower):
    name = "viperx"
    layout = VIPERX_LAYOUT
    bus_class = DynamixelMotorsBus

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**self.action_features, **{n: c.shape for n, c in self.cameras.items()}}

    def configure_motors(self) -> None:
        for motor in self.bus.motors:
            # extended position for the joints (no wrap at 0/4095), current-based position for the gripper
            self.bus.write("Operating_Mode", motor, 5 if motor == "gripper" else 4, normalize=False)
            self.bus.write("Return_Delay_Time", motor, 0, normalize=False)

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        sent = super().send_action(action)
        shadow_goals = {s: sent[f"{p}.pos"] for s, p in SHADOWS.items() if f"{p}.pos" in sent}
        if shadow_goals:
            self.bus.sync_write("Goal_Position", shadow_goals)
        return sent


class WidowXLeader(_ShadowMixin, ServoArmLeader):
    name = "widowx"
    layout = WIDOWX_LAYOUT
    bus_class = DynamixelMotorsBus


@dataclass
class AlohaConfig(BimanualConfig):
    max_relative_target: float | None = 5.0
    """ALOHA's arms are strong: by default each command moves a joint at most 5 units."""


class AlohaFollower(BimanualFollower):
    name = "aloha"
    config_class = AlohaConfig
    arm_class = ViperXFollower

    @staticmethod
    def default_cameras() -> dict[str, CameraConfig]:
        """ALOHA-2's four cameras (indices to adapt to the host)."""
        return {
            name: CameraConfig("opencv", str(i), 640, 480, 30)
            for i, name in enumerate(("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist"))
        }


class AlohaLeader(BimanualLeader):
    name = "aloha_leader"
    arm_class = WidowXLeader
