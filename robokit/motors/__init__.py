"""Servo buses (Feetech, Dynamixel), calibration, and a servo emulator behind a pty."""

from robokit.motors.calibration import MotorCalibration, MotorNormMode
from robokit.motors.motors_bus import CommunicationError, Motor, MotorsBus, PortLostError

__all__ = ["Motor", "MotorCalibration", "MotorNormMode", "MotorsBus", "CommunicationError", "PortLostError"]
