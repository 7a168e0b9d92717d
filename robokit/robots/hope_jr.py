"""Hope-JR (TheRobotStudio's humanoid arm and hand).

- `HopeJrArm`: seven Feetech servos, a big SM8512BL at the shoulder.
- `HopeJrHand`: sixteen SCS0009 micro servos (Feetech's SCS series, "protocol 1") pulling the
  finger tendons. Every joint is a tendon target in 0 (released) .. 100 (pulled). The thumb has
  four servos (CMC, MCP, PIP, DIP); each finger has three: a radial and an ulnar flexor (together
  they flex the finger's base and tilt it toward the thumb or the pinky) and one for PIP+DIP.

Its leader is the Homunculus glove (`robokit.teleoperators.homunculus_glove`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from robokit.motors.calibration import MotorCalibration, MotorNormMode, save_calibration
from robokit.motors.feetech import FeetechMotorsBus, FeetechSCSMotorsBus
from robokit.robots.robot import DeviceNotConnectedError
from robokit.robots.servo_arm import ServoArmConfig, ServoArmFollower

HOPE_JR_ARM_LAYOUT = {
    "shoulder_pitch": (1, "sm8512bl"),
    "shoulder_yaw": (2, "sts3250"),
    "shoulder_roll": (3, "sts3250"),
    "elbow_flex": (4, "sts3250"),
    "wrist_roll": (5, "sts3215"),
    "wrist_yaw": (6, "sts3215"),
    "wrist_pitch": (7, "sts3215"),
}


class HopeJrArm(ServoArmFollower):
    name = "hope_jr_arm"
    layout = HOPE_JR_ARM_LAYOUT
    bus_class = FeetechMotorsBus
    full_turn_motors = ("wrist_roll",)

    def configure_motors(self) -> None:
        for motor in self.bus.motors:
            self.bus.write("Return_Delay_Time", motor, 0, normalize=False)
            self.bus.write("Operating_Mode", motor, 0, normalize=False)
        # the shoulder lifts the whole arm: a firmer, damped position loop
        self.bus.write("P_Coefficient", "shoulder_pitch", 32, normalize=False)
        self.bus.write("D_Coefficient", "shoulder_pitch", 32, normalize=False)


HAND_FINGERS = ("thumb", "index", "middle", "ring", "pinky")
HOPE_JR_HAND_LAYOUT = {
    "thumb_cmc": (1, "scs0009"),
    "thumb_mcp": (2, "scs0009"),
    "thumb_pip": (3, "scs0009"),
    "thumb_dip": (4, "scs0009"),
    **{
        f"{finger}_{tendon}": (5 + 3 * k + j, "scs0009")
        for k, finger in enumerate(HAND_FINGERS[1:])
        for j, tendon in enumerate(("radial_flexor", "ulnar_flexor", "pip_dip"))
    },
}
# servos mounted so that pulling the tendon turns them the other way: drive_mode 1 at calibration
HAND_REVERSED_MOTORS = {
    "right": (
        "thumb_mcp",
        "thumb_dip",
        "index_ulnar_flexor",
        "middle_ulnar_flexor",
        "ring_ulnar_flexor",
        "ring_pip_dip",
        "pinky_ulnar_flexor",
        "pinky_pip_dip",
    ),
    "left": (
        "thumb_cmc",
        "thumb_mcp",
        "thumb_dip",
        "index_radial_flexor",
        "index_pip_dip",
        "middle_radial_flexor",
        "middle_pip_dip",
        "ring_radial_flexor",
        "ring_pip_dip",
        "pinky_radial_flexor",
    ),
}


@dataclass
class HopeJrHandConfig(ServoArmConfig):
    side: str = "right"
    """Which hand, "right" or "left": sets the servos' pull directions when calibrating."""

    def __post_init__(self):
        if self.side not in HAND_REVERSED_MOTORS:
            raise ValueError(f"HopeJrHandConfig.side={self.side!r}, expected 'right' or 'left'")


class HopeJrHand(ServoArmFollower):
    """The Hope-JR hand: observations and actions are the 16 tendon servos' positions, 0..100."""

    name = "hope_jr_hand"
    config_class = HopeJrHandConfig
    layout = HOPE_JR_HAND_LAYOUT
    bus_class = FeetechSCSMotorsBus
    fingers = HAND_FINGERS

    def __init__(self, config: HopeJrHandConfig):
        super().__init__(config)
        self.config: HopeJrHandConfig = config

    def _init_bus(self, port: str, use_degrees: bool) -> None:
        super()._init_bus(port, use_degrees)
        for motor in self.bus.motors.values():  # a tendon has no angle: 0 released .. 100 pulled
            motor.norm_mode = MotorNormMode.RANGE_0_100

    def configure_motors(self) -> None:
        for motor in self.bus.motors:  # SCS servos have a single (position) mode
            self.bus.write("Return_Delay_Time", motor, 0, normalize=False)

    def calibrate(self) -> None:
        """Finger by finger: with torque off, move the finger's servos through their ranges, press ENTER.

        The SCS servos have no homing register, so a calibration is the range of motion of each
        servo (written to the motors as position limits) and its pull direction (`side`).
        """
        bus = self.bus
        if not bus.is_connected:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        bus.disable_torque()
        bus.reset_calibration()
        reversed_motors = HAND_REVERSED_MOTORS[self.config.side]
        calibration = {}
        for finger in self.fingers:
            motors = [m for m in bus.motors if m.startswith(f"{finger}_")]
            done = threading.Event()
            prompt = f"Move the {finger}'s servos ({', '.join(motors)}) through their whole range, then press ENTER..."
            threading.Thread(target=lambda p=prompt, d=done: (self.input_fn(p), d.set()), daemon=True).start()
            mins, maxs = bus.record_ranges_of_motion(motors, stop=done.is_set)
            for motor in motors:
                calibration[motor] = MotorCalibration(
                    bus.motors[motor].id, int(motor in reversed_motors), 0, mins[motor], maxs[motor]
                )
        bus.write_calibration(calibration)
        save_calibration(self.calibration_fpath, calibration)
        self._calibration_ok = True
        print(f"Calibration saved to {self.calibration_fpath}")
