"""SO-100 / SO-101 (TheRobotStudio & Hugging Face) and Moss v1: six Feetech STS3215 servos."""

from __future__ import annotations

from robokit.motors.feetech import FeetechMotorsBus
from robokit.robots.servo_arm import ServoArmFollower, ServoArmLeader

SO101_LAYOUT = {
    "shoulder_pan": (1, "sts3215"),
    "shoulder_lift": (2, "sts3215"),
    "elbow_flex": (3, "sts3215"),
    "wrist_flex": (4, "sts3215"),
    "wrist_roll": (5, "sts3215"),
    "gripper": (6, "sts3215"),
}


class SO101Follower(ServoArmFollower):
    name = "so101_follower"
    layout = SO101_LAYOUT
    bus_class = FeetechMotorsBus
    full_turn_motors = ("wrist_roll",)

    def configure_motors(self) -> None:
        bus = self.bus
        for motor in bus.motors:
            bus.write("Return_Delay_Time", motor, 0, normalize=False)  # answer at once (default 500 us)
            bus.write("Operating_Mode", motor, 0, normalize=False)  # position
            # softer than the factory P=32 to avoid shaking; D as the factory
            bus.write("P_Coefficient", motor, 16, normalize=False)
            bus.write("I_Coefficient", motor, 0, normalize=False)
            bus.write("D_Coefficient", motor, 32, normalize=False)
        # the gripper squeezes objects: cap its torque and current so it does not burn out
        bus.write("Max_Torque_Limit", "gripper", 500, normalize=False)
        bus.write("Protection_Current", "gripper", 250, normalize=False)
        bus.write("Overload_Torque", "gripper", 25, normalize=False)


class SO101Leader(ServoArmLeader):
    name = "so101_leader"
    layout = SO101_LAYOUT
    bus_class = FeetechMotorsBus
    full_turn_motors = ("wrist_roll",)


class SO100Follower(SO101Follower):
    name = "so100_follower"


class SO100Leader(SO101Leader):
    name = "so100_leader"


class MossFollower(SO101Follower):
    name = "moss_follower"


class MossLeader(SO101Leader):
    name = "moss_leader"
