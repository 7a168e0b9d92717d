"""Virtual arms: a servo emulator with a robot's motor layout, pre-calibrated, optionally "moved by hand".

    arm = VirtualArm("so101", calibration_id="my_arm", calibration_dir=tmp)   # emulator + calibration file
    robot = make_robot("so101_follower", port=arm.port, id="my_arm", calibration_dir=tmp)

`robokit virtual-arm so101` runs one from the command line. A virtual leader can `animate`: its
joints sweep slowly (only while torque is off, like a human moving a leader arm).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from robokit.motors.calibration import MotorCalibration, save_calibration
from robokit.motors.emulator import ServoChainEmulator
from robokit.robots.registry import virtual_arm_layout
from robokit.robots.robot import DEFAULT_CALIBRATION_DIR

CAL_RANGE = (1024, 3072)
"""Range of motion written for virtual joints: a quarter turn either side of the middle."""


class VirtualArm:
    def __init__(self, name: str, calibration_id: str | None = None, calibration_dir: str | Path | None = None,
                 animate: bool = False, baudrate: int = 1_000_000):
        self.name = name
        self.protocol, motors, self.device_class = virtual_arm_layout(name)
        self.emulator = ServoChainEmulator(self.protocol, motors, baudrate=baudrate).start()
        self.port = self.emulator.port
        self.calibration_path: Path | None = None
        if calibration_id is not None:
            self.calibration_path = self.write_calibration(calibration_id, calibration_dir)
        self._stop = threading.Event()
        self._animator = None
        if animate:
            self._animator = threading.Thread(target=self._animate, daemon=True, name=f"animate-{self.port}")
            self._animator.start()

    def write_calibration(self, calibration_id: str, calibration_dir: str | Path | None = None) -> Path:
        """A calibration file matching the emulator's registers (offset 0, range CAL_RANGE)."""
        cls = self.device_class
        base = Path(calibration_dir).expanduser() if calibration_dir else DEFAULT_CALIBRATION_DIR
        kind = "robots" if cls.__module__.startswith("robokit.robots") and hasattr(cls, "send_action") else "teleoperators"
        path = base / kind / cls.name / f"{calibration_id}.json"
        calibration = {}
        for motor, (motor_id, _) in cls.layout.items():
            servo = self.emulator.servo(motor_id)
            lo, hi = (0, servo.spec.resolution - 1) if motor in cls.full_turn_motors else CAL_RANGE
            servo._set("Min_Position_Limit", lo)
            servo._set("Max_Position_Limit", hi)
            calibration[motor] = MotorCalibration(motor_id, 0, 0, lo, hi)
        save_calibration(path, calibration)
        return path

    def _animate(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(0.01):
            t = time.monotonic() - t0
            for k, servo in enumerate(self.emulator.servos):
                if servo.get("Torque_Enable") == 0:
                    servo.set_position(2048 + 600 * math.sin(0.5 * t + k))

    def close(self) -> None:
        self._stop.set()
        self.emulator.close()

    def __enter__(self) -> "VirtualArm":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
