"""End-effector control: a keyboard's (x, y, z, gripper) deltas become an arm's joint targets.

`EndEffectorTeleop` wraps a teleoperator that emits `delta_x`, `delta_y`, `delta_z` (each -1, 0
or 1 per tick) and `gripper` (open +1 / close -1), and a follower arm with a kinematic model
(`robokit.robots.kinematics`, SO-100 / SO-101). It keeps a commanded joint configuration: on the
first tick it reads the arm's joints; then each tick it moves the commanded gripper point by
`step_m` per held direction, solves damped-least-squares inverse kinematics for shoulder_pan,
shoulder_lift, elbow_flex and wrist_flex within the joint limits (the kinematic model's and the
calibrated range's, whichever is tighter), and returns joint targets in the robot's own units.
wrist_roll holds its pose. Its actions are the robot's `action_features`, so `robokit record`
stores joint actions a policy can learn from.

    teleop = for_robot(make_teleoperator("keyboard", mode="ee"), robot, step_m=0.05 / fps)

Joint angles come from the calibration: the middle of each calibrated range is the kinematic
zero (the arm's calibration pose), and -100..100 spans the calibrated range (or degrees with
`use_degrees`). `directions` flips a joint whose positive direction differs from the model's.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from robokit.motors.calibration import MotorNormMode
from robokit.robots.kinematics import SO101_CHAIN, KinematicChain, inverse_kinematics
from robokit.robots.robot import NotCalibratedError
from robokit.teleoperators.teleoperator import Teleoperator

logger = logging.getLogger(__name__)

EE_DELTA_KEYS = ("delta_x", "delta_y", "delta_z")
POSITION_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex")
"""The joints inverse kinematics moves; wrist_roll does not move the gripper point."""


def for_robot(teleop: Teleoperator, robot, step_m: float = 0.001, **kwargs) -> Teleoperator:
    """`teleop` itself, or wrapped in `EndEffectorTeleop` when it emits end-effector deltas the robot lacks."""
    emits_ee = all(k in teleop.action_features for k in EE_DELTA_KEYS)
    if not emits_ee or all(k in robot.action_features for k in EE_DELTA_KEYS):
        return teleop
    return EndEffectorTeleop(teleop, robot, step_m=step_m, **kwargs)


class EndEffectorTeleop(Teleoperator):
    name = "end_effector"

    def __init__(
        self,
        source: Teleoperator,
        robot,
        step_m: float = 0.001,
        gripper_step: float = 2.0,
        chain: KinematicChain = SO101_CHAIN,
        directions: dict[str, float] | None = None,
    ):
        super().__init__(source.config)
        missing = [f"{j.name}.pos" for j in chain.joints if f"{j.name}.pos" not in robot.action_features]
        if missing or "gripper.pos" not in robot.action_features or not hasattr(robot, "bus"):
            raise ValueError(
                f"end-effector control of {robot!r}: the robot lacks {missing or ['gripper.pos']} "
                f"(or a servo bus); it needs an arm with joints {chain.names} + gripper (SO-100 / SO-101)"
            )
        if step_m <= 0:
            raise ValueError(f"EndEffectorTeleop: step_m={step_m}, expected > 0 (metres per tick)")
        self.source, self.robot, self.chain = source, robot, chain
        self.step_m, self.gripper_step = step_m, gripper_step
        self.directions = np.array([(directions or {}).get(j.name, 1.0) for j in chain.joints])
        self.active = np.array([j.name in POSITION_JOINTS for j in chain.joints])
        self.q: np.ndarray | None = None
        """Commanded joint angles (radians, model convention); None until the first tick."""
        self.gripper: float | None = None
        self.target: np.ndarray | None = None
        """Commanded gripper point (metres, base frame)."""

    # -- Teleoperator API --------------------------------------------------------------------------
    @property
    def action_features(self) -> dict[str, Any]:
        return dict(self.robot.action_features)

    @property
    def is_connected(self) -> bool:
        return self.source.is_connected

    def connect(self, calibrate: bool = True) -> None:
        self.source.connect(calibrate)
        self.q = None

    def disconnect(self) -> None:
        self.source.disconnect()

    def get_action(self) -> dict[str, float]:
        delta = self.source.get_action()
        if self.q is None:
            self._sync()
        move = np.array([float(delta.get(k, 0.0)) for k in EE_DELTA_KEYS])
        if move.any():
            self.target = self.target + self.step_m * np.clip(move, -1.0, 1.0)
            q, err = inverse_kinematics(
                self.chain,
                self.q,
                self.target,
                tol=1e-5,
                max_iters=20,
                active=self.active,
                lower=self.lower,
                upper=self.upper,
            )
            self.q = q
            if err > self.step_m:  # out of reach or at a limit: stop where the arm can be
                self.target = self.chain.position(q)
        self.gripper = min(
            max(self.gripper + self.gripper_step * float(delta.get("gripper", 0.0)), 0.0), 100.0
        )
        action = {f"{j.name}.pos": self._to_units(j.name, a) for j, a in zip(self.chain.joints, self.q)}
        action["gripper.pos"] = self.gripper
        return action

    # -- units -------------------------------------------------------------------------------------
    def _sync(self) -> None:
        """Start from where the arm is: its joints, in radians, and its gripper point."""
        bus = self.robot.bus
        if not bus.calibration:
            raise NotCalibratedError(
                f"end-effector control: {self.robot!r} has no calibration; run `robokit calibrate`"
            )
        self._rad_per_unit = np.array([self._scale(j.name) for j in self.chain.joints])
        half_range = np.radians([self._half_deg(j.name) for j in self.chain.joints])  # the calibrated range
        self.lower = np.maximum(self.chain.lower, -half_range)
        self.upper = np.minimum(self.chain.upper, half_range)
        present = self.robot.get_observation()
        units = np.array([present[f"{j.name}.pos"] for j in self.chain.joints])
        self.q = np.clip(units * self._rad_per_unit, self.lower, self.upper)
        self.target = self.chain.position(self.q)
        self.gripper = float(present["gripper.pos"])
        logger.info(
            "end-effector control from q=%s rad, gripper point %s m",
            np.round(self.q, 3),
            np.round(self.target, 3),
        )

    def _mode(self, motor: str) -> MotorNormMode:
        return self.robot.bus.motors[motor].norm_mode

    def _half_deg(self, motor: str) -> float:
        """Half the calibrated range of `motor` in degrees."""
        cal = self.robot.bus.calibration[motor]
        return (cal.range_max - cal.range_min) / 2 * 360.0 / (self.robot.bus.specs[motor].resolution - 1)

    def _scale(self, motor: str) -> float:
        """Radians per normalized unit of `motor` (signed by `directions`)."""
        sign = self.directions[self.chain.names.index(motor)]
        if self._mode(motor) == MotorNormMode.DEGREES:
            return sign * math.pi / 180.0
        if self._mode(motor) != MotorNormMode.RANGE_M100_100:
            raise ValueError(
                f"end-effector control: joint {motor!r} is normalized as {self._mode(motor).value}, expected degrees or range_m100_100"
            )
        return sign * math.radians(self._half_deg(motor)) / 100.0

    def _to_units(self, motor: str, angle: float) -> float:
        return float(angle / self._rad_per_unit[self.chain.names.index(motor)])
