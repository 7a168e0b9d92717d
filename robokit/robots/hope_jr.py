"""Hope-JR arm (TheRobotStudio's humanoid arm): seven Feetech servos, a big SM8512BL at the shoulder.

Its hand (scs0009 servos on Feetech's protocol 1) is not supported yet.
"""

from __future__ import annotations

from robokit.motors.feetech import FeetechMotorsBus
from robokit.robots.servo_arm import ServoArmFollower

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
