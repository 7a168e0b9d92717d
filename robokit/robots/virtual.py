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
from robokit.motors.emulator import FaultConfig, ServoChainEmulator
from robokit.robots.registry import virtual_arm_class
from robokit.robots.robot import DEFAULT_CALIBRATION_DIR, Robot

CAL_RANGE = (1024, 3072)
"""Range of motion written for virtual joints: a quarter turn either side of the middle (4096-step
encoders; other resolutions get the same quarter turns)."""


def virtual_device(name: str, **kwargs):
    """A `VirtualArm`, or the device's own virtual twin when it is not a servo chain (the glove)."""
    cls = virtual_arm_class(name)
    twin = getattr(cls, "virtual_device", None)
    if twin is None:
        return VirtualArm(cls, **kwargs)
    import importlib

    module, attr = twin.split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


class VirtualArm:
    def __init__(
        self,
        name: str | type,
        calibration_id: str | None = None,
        calibration_dir: str | Path | None = None,
        animate: bool = False,
        baudrate: int = 1_000_000,
        faults: FaultConfig | None = None,
    ):
        cls = virtual_arm_class(name) if isinstance(name, str) else name
        self.name, self.device_class = getattr(cls, "name", str(name)), cls
        self.sides: dict[str, VirtualArm] = {}
        self._stop = threading.Event()
        self._animator = None
        self.calibration_path: Path | None = None
        if hasattr(cls, "arm_class"):  # bimanual: one chain per arm, calibrations "<id>_left" / "<id>_right"
            for side in ("left", "right"):
                arm_id = None if calibration_id is None else f"{calibration_id}_{side}"
                self.sides[side] = VirtualArm(
                    cls.arm_class, arm_id, calibration_dir, animate, baudrate, faults
                )
            self.emulator, self.port = None, None
            return
        self.protocol = cls.bus_class.protocol
        motors = {motor_id: model for motor_id, model in cls.layout.values()}
        self.emulator = ServoChainEmulator(self.protocol, motors, baudrate=baudrate)
        if faults is not None:
            self.emulator.faults = faults
        self.emulator.start()
        self.port = self.emulator.port
        if calibration_id is not None:
            self.calibration_path = self.write_calibration(calibration_id, calibration_dir)
        if animate:
            self._animator = threading.Thread(target=self._animate, daemon=True, name=f"animate-{self.port}")
            self._animator.start()

    def write_calibration(self, calibration_id: str, calibration_dir: str | Path | None = None) -> Path:
        """A calibration file matching the emulator's registers (offset 0, range CAL_RANGE)."""
        cls = self.device_class
        base = Path(calibration_dir).expanduser() if calibration_dir else DEFAULT_CALIBRATION_DIR
        kind = "robots" if issubclass(cls, Robot) else "teleoperators"
        path = base / kind / cls.name / f"{calibration_id}.json"
        calibration = {}
        for motor, (motor_id, _) in cls.layout.items():
            servo = self.emulator.servo(motor_id)
            res = servo.spec.resolution
            lo, hi = (0, res - 1) if motor in cls.full_turn_motors else (res // 4, 3 * res // 4)
            servo._set("Min_Position_Limit", lo)
            servo._set("Max_Position_Limit", hi)
            drive_mode = int(motor in getattr(cls, "mirrored_motors", ()))
            calibration[motor] = MotorCalibration(motor_id, drive_mode, 0, lo, hi)
        save_calibration(path, calibration)
        return path

    def _animate(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(0.01):
            t = time.monotonic() - t0
            for k, servo in enumerate(self.emulator.servos):
                if servo.get("Torque_Enable") == 0:
                    res = servo.spec.resolution
                    servo.set_position(res / 2 + res * 600 / 4096 * math.sin(0.5 * t + k))

    @property
    def ports(self) -> dict[str, str]:
        """`{"": port}` for one arm, `{"left": port, "right": port}` for a pair."""
        return {side: arm.port for side, arm in self.sides.items()} if self.sides else {"": self.port}

    def close(self) -> None:
        self._stop.set()
        for arm in self.sides.values():
            arm.close()
        if self.emulator is not None:
            self.emulator.close()

    def __enter__(self) -> "VirtualArm":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
