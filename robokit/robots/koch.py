"""Koch v1.1 (Alexander Koch's low-cost arm): Dynamixel X-series servos, protocol 2.0."""

from __future__ import annotations

from robokit.motors.dynamixel import DynamixelMotorsBus
from robokit.robots.servo_arm import ServoArmFollower, ServoArmLeader

KOCH_FOLLOWER_LAYOUT = {
    "shoulder_pan": (1, "xl430-w250"),
    "shoulder_lift": (2, "xl430-w250"),
    "elbow_flex": (3, "xl330-m288"),
    "wrist_flex": (4, "xl330-m288"),
    "wrist_roll": (5, "xl330-m288"),
    "gripper": (6, "xl330-m288"),
}
KOCH_LEADER_LAYOUT = {name: (motor_id, "xl330-m077") for name, (motor_id, _) in KOCH_FOLLOWER_LAYOUT.items()}


class KochFollower(ServoArmFollower):
    name = "koch_follower"
    layout = KOCH_FOLLOWER_LAYOUT
    bus_class = DynamixelMotorsBus
    full_turn_motors = ("wrist_roll",)

    def configure_motors(self) -> None:
        bus = self.bus  # EEPROM registers: torque is off here (torque_disabled in configure)
        for motor in bus.motors:
            # extended position lets a joint pass the 0/4095 wrap without a full turn back;
            # the gripper uses current-based position so it can hold an object without overheating
            mode = 5 if motor == "gripper" else 4
            bus.write("Operating_Mode", motor, mode, normalize=False)
            bus.write("Return_Delay_Time", motor, 0, normalize=False)
        for motor in ("elbow_flex",):  # the heaviest-loaded XL330: firmer position gains
            bus.write("Position_P_Gain", motor, 1500, normalize=False)
            bus.write("Position_D_Gain", motor, 600, normalize=False)


class KochLeader(ServoArmLeader):
    name = "koch_leader"
    layout = KOCH_LEADER_LAYOUT
    bus_class = DynamixelMotorsBus
    full_turn_motors = ("wrist_roll",)
