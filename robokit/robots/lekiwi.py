"""LeKiwi: an SO-101 arm on a mobile base with three omni wheels, all Feetech STS3215 on one bus.

The robot runs `LeKiwi` (this module) in a host process on its Raspberry Pi
(`robokit.robots.lekiwi_remote.LeKiwiHost`); a laptop drives it through `LeKiwiClient` over
ZeroMQ. Features: arm joints `arm_<joint>.pos`, base velocities `x.vel` / `y.vel` (m/s, x
forward, y left) and `theta.vel` (deg/s, counter-clockwise), cameras.

Kinematics: wheel i sits at angle a_i around the centre (radius `base_radius_m`) and rolls along
the tangent (-sin a_i, cos a_i); its rim speed is v_i = -sin(a_i) vx + cos(a_i) vy + R w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robokit.cameras.camera import CameraConfig
from robokit.motors.feetech import FeetechMotorsBus
from robokit.robots.robot import NotCalibratedError
from robokit.robots.servo_arm import ServoArmConfig, ServoArmFollower, clamp_relative

ARM_LAYOUT = {
    "arm_shoulder_pan": (1, "sts3215"),
    "arm_shoulder_lift": (2, "sts3215"),
    "arm_elbow_flex": (3, "sts3215"),
    "arm_wrist_flex": (4, "sts3215"),
    "arm_wrist_roll": (5, "sts3215"),
    "arm_gripper": (6, "sts3215"),
}
WHEELS = {
    "base_left_wheel": (7, "sts3215"),
    "base_back_wheel": (8, "sts3215"),
    "base_right_wheel": (9, "sts3215"),
}
WHEEL_ANGLES_DEG = {"base_left_wheel": 60.0, "base_back_wheel": 180.0, "base_right_wheel": 300.0}
BASE_FEATURES = ("x.vel", "y.vel", "theta.vel")
STEPS_PER_TURN = 4096


@dataclass
class LeKiwiConfig(ServoArmConfig):
    wheel_radius_m: float = 0.05
    """Omni wheel radius."""
    base_radius_m: float = 0.125
    """Distance from the base centre to each wheel."""
    max_wheel_steps_per_s: int = 3000
    """Wheel speed cap (encoder steps per second); larger commands are scaled down together."""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Cameras by name (LeKiwi has "front" and "wrist")."""


class BaseKinematics:
    def __init__(self, wheel_radius_m: float, base_radius_m: float):
        a = np.deg2rad([WHEEL_ANGLES_DEG[w] for w in WHEELS])
        # rows: wheels; columns: vx, vy, w (rad/s) -> rim speed (m/s)
        self.matrix = np.stack([-np.sin(a), np.cos(a), np.full(3, base_radius_m)], axis=1)
        self.inverse = np.linalg.inv(self.matrix)
        self.wheel_radius_m = wheel_radius_m

    def body_to_wheels(self, x_vel: float, y_vel: float, theta_vel_deg: float) -> np.ndarray:
        """Body velocity -> wheel speeds in encoder steps per second."""
        rim = self.matrix @ np.array([x_vel, y_vel, math.radians(theta_vel_deg)])
        return rim / self.wheel_radius_m / (2 * math.pi) * STEPS_PER_TURN

    def wheels_to_body(self, steps_per_s: np.ndarray) -> tuple[float, float, float]:
        rim = np.asarray(steps_per_s, dtype=np.float64) / STEPS_PER_TURN * 2 * math.pi * self.wheel_radius_m
        vx, vy, w = self.inverse @ rim
        return float(vx), float(vy), math.degrees(float(w))


class LeKiwi(ServoArmFollower):
    name = "lekiwi"
    config_class = LeKiwiConfig
    layout = {**ARM_LAYOUT, **WHEELS}
    bus_class = FeetechMotorsBus
    full_turn_motors = ("arm_wrist_roll", *WHEELS)  # wheels turn endlessly: no range to sweep

    def __init__(self, config: LeKiwiConfig):
        super().__init__(config)
        self.config: LeKiwiConfig = config
        self.kinematics = BaseKinematics(config.wheel_radius_m, config.base_radius_m)
        self.arm_motors = list(ARM_LAYOUT)

    @property
    def action_features(self) -> dict[str, Any]:
        return {**{f"{m}.pos": float for m in ARM_LAYOUT}, **{k: float for k in BASE_FEATURES}}

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**self.action_features, **{n: c.shape for n, c in self.cameras.items()}}

    def configure_motors(self) -> None:
        for motor in self.bus.motors:
            self.bus.write("Return_Delay_Time", motor, 0, normalize=False)
            self.bus.write("Operating_Mode", motor, 1 if motor in WHEELS else 0, normalize=False)
        for motor in ARM_LAYOUT:
            self.bus.write("P_Coefficient", motor, 16, normalize=False)
            self.bus.write("D_Coefficient", motor, 32, normalize=False)

    def get_observation(self) -> dict[str, Any]:
        if not self.bus.is_connected:
            from robokit.robots.robot import DeviceNotConnectedError

            raise DeviceNotConnectedError(f"{self!r} is not connected")
        arm = self.bus.sync_read("Present_Position", self.arm_motors)
        wheels = self.bus.sync_read("Present_Velocity", list(WHEELS), normalize=False)
        vx, vy, wz = self.kinematics.wheels_to_body(np.array([wheels[w] for w in WHEELS]))
        obs: dict[str, Any] = {
            **{f"{m}.pos": float(v) for m, v in arm.items()},
            "x.vel": vx,
            "y.vel": vy,
            "theta.vel": wz,
        }
        for name, cam in self.cameras.items():
            obs[name] = cam.async_read()
        return obs

    def wheel_commands(self, x_vel: float, y_vel: float, theta_vel: float) -> dict[str, int]:
        speeds = self.kinematics.body_to_wheels(x_vel, y_vel, theta_vel)
        peak = float(np.abs(speeds).max())
        if peak > self.config.max_wheel_steps_per_s:  # keep the direction, slow every wheel alike
            speeds = speeds * (self.config.max_wheel_steps_per_s / peak)
        return {wheel: int(round(v)) for wheel, v in zip(WHEELS, speeds)}

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if not self._calibration_ok:
            raise NotCalibratedError(
                f"{self!r} is not calibrated ({self.calibration_fpath}); refusing to move. Run `robokit calibrate`"
            )
        unknown = set(action) - set(self.action_features)
        if unknown:
            raise KeyError(
                f"{self!r}.send_action: unknown action keys {sorted(unknown)}; expected {list(self.action_features)}"
            )
        goal = {k[:-4]: float(v) for k, v in action.items() if k.endswith(".pos")}
        if goal and self.config.max_relative_target is not None:
            goal = clamp_relative(
                goal, self.bus.sync_read("Present_Position", list(goal)), self.config.max_relative_target
            )
        if goal:
            self.bus.sync_write("Goal_Position", goal)
        base = [float(action.get(k, 0.0)) for k in BASE_FEATURES]
        wheels = self.wheel_commands(*base)
        self.bus.sync_write("Goal_Velocity", wheels, normalize=False)
        body = self.kinematics.wheels_to_body(np.array([wheels[w] for w in WHEELS]))
        return {**{f"{m}.pos": v for m, v in goal.items()}, **dict(zip(BASE_FEATURES, body))}

    def stop_base(self) -> None:
        self.bus.sync_write("Goal_Velocity", {w: 0 for w in WHEELS}, normalize=False)

    def disconnect(self) -> None:
        if self.bus.is_connected:
            try:
                self.stop_base()
            except Exception:  # the port may be gone; disconnect still closes it
                pass
        super().disconnect()
