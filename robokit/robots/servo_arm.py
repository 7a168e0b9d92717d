"""An arm of servos on one bus, as a follower (Robot) or a leader (Teleoperator).

SO-100/101, Koch v1.1 and Moss v1 differ only in their motor list, servo vendor and a few
register settings (`configure`); everything else lives here: loading and checking the
calibration, the interactive calibration, observations, the `max_relative_target` clamp, and
releasing torque on exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from robokit.cameras.camera import Camera, CameraConfig, make_camera
from robokit.motors.calibration import MotorCalibration, MotorNormMode, load_calibration, save_calibration
from robokit.motors.motors_bus import Motor, MotorsBus
from robokit.robots.robot import (
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    NotCalibratedError,
    Robot,
    RobotConfig,
)
from robokit.teleoperators.teleoperator import Teleoperator, TeleoperatorConfig

logger = logging.getLogger(__name__)


@dataclass
class ServoArmConfig(RobotConfig):
    port: str = ""
    """Serial port of the servo bus (e.g. /dev/ttyACM0, or the /dev/pts/N of `robokit virtual-arm`)."""
    disable_torque_on_disconnect: bool = True
    """Release torque when disconnecting (also on Ctrl-C, errors and process exit)."""
    max_relative_target: float | None = None
    """Largest step per command and joint, in normalized units (None: no clamp)."""
    use_degrees: bool = False
    """Joints in degrees instead of -100..100."""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Cameras by name, e.g. {"front": CameraConfig(type="opencv", index_or_path="0")}."""


@dataclass
class ServoLeaderConfig(TeleoperatorConfig):
    port: str = ""
    """Serial port of the leader arm's servo bus."""
    use_degrees: bool = False
    """Joints in degrees instead of -100..100 (must match the follower)."""


# -- live objects released at exit: torque off and port closed even without a clean disconnect ---
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()


@atexit.register
def _release_all() -> None:
    for device in list(_LIVE):
        try:
            if device.is_connected:
                device.disconnect()
        except Exception as exc:  # exit must not raise; say what failed
            logger.warning("at exit: could not disconnect %r: %s", device, exc)


def arm_motors(
    layout: dict[str, tuple[int, str]], use_degrees: bool, gripper: str = "gripper"
) -> dict[str, Motor]:
    body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
    return {
        name: Motor(motor_id, model, MotorNormMode.RANGE_0_100 if name == gripper else body)
        for name, (motor_id, model) in layout.items()
    }


# How far past its normalized range a goal may lie and still be clamped (a policy's overshoot);
# beyond, it is refused as absurd (NaN, 1e9, a unit mix-up).
_ACCEPTED = {
    MotorNormMode.RANGE_M100_100: (-200.0, 200.0),
    MotorNormMode.RANGE_0_100: (-50.0, 150.0),
    MotorNormMode.DEGREES: (-360.0, 360.0),
}


def joint_limits(bus: MotorsBus, prefix: str = "") -> dict[str, tuple[float, float]]:
    """`{"<prefix><motor>.pos": (low, high)}`: the goals the bus's motors accept before clamping."""
    return {f"{prefix}{name}.pos": _ACCEPTED[motor.norm_mode] for name, motor in bus.motors.items()}


def interactive_calibration(
    bus: MotorsBus, name: str, full_turn_motors: tuple[str, ...] = (), input_fn: Callable[[str], str] = input
) -> dict[str, MotorCalibration]:
    """Homing at the middle pose, then ranges of motion from a sweep of every joint; written to the motors."""
    bus.disable_torque()
    input_fn(f"Move {name} to the middle of its range of motion and press ENTER...")
    offsets = bus.set_half_turn_homings()
    to_sweep = [m for m in bus.motors if m not in full_turn_motors]
    print(
        f"Move all joints except {list(full_turn_motors)} through their entire ranges of motion, then press ENTER."
    )
    done = threading.Event()
    threading.Thread(target=lambda: (input_fn(""), done.set()), daemon=True).start()
    mins, maxs = bus.record_ranges_of_motion(to_sweep, stop=done.is_set)
    calibration = {}
    for motor_name, motor in bus.motors.items():
        res = bus.specs[motor_name].resolution
        lo, hi = (0, res - 1) if motor_name in full_turn_motors else (mins[motor_name], maxs[motor_name])
        calibration[motor_name] = MotorCalibration(motor.id, 0, offsets[motor_name], lo, hi)
    bus.write_calibration(calibration)
    return calibration


class _ServoDevice:
    """What follower and leader share: a bus, a calibration file, calibration checks."""

    layout: dict[str, tuple[int, str]] = {}
    """Motor name -> (id, model), in the arm's joint order."""
    bus_class: type[MotorsBus]
    full_turn_motors: tuple[str, ...] = ()
    input_fn: Callable[[str], str] = staticmethod(input)

    def _init_bus(self, port: str, use_degrees: bool) -> None:
        if not port:
            flag = "--robot.port" if isinstance(self, Robot) else "--teleop.port"
            raise ValueError(
                f"{type(self).__name__}: its servo bus port is empty; give it ({flag} on the command line, "
                "config.port in Python; `robokit find-port` finds it, `robokit virtual-arm` makes a virtual one)"
            )
        calibration = load_calibration(self.calibration_fpath) if self.calibration_fpath.is_file() else {}
        self.bus = self.bus_class(port, arm_motors(self.layout, use_degrees), calibration=calibration)
        self._calibration_ok = False

    @property
    def is_calibrated(self) -> bool:
        return self._calibration_ok

    def _connect_bus(self, calibrate: bool) -> None:
        if self.bus.is_connected:
            raise DeviceAlreadyConnectedError(f"{self!r} is already connected")
        self.bus.connect()
        _LIVE.add(self)
        try:
            self._check_calibration(calibrate)
        except BaseException:
            self.bus.disconnect()
            raise

    def _check_calibration(self, calibrate: bool) -> None:
        if self.bus.calibration:
            problems = self.bus.calibration_mismatches()
            names_differ = problems and (
                "calibration has motors" in problems[0] or "calibration id" in problems[0]
            )
            if names_differ:
                raise NotCalibratedError(
                    f"{self!r}: the calibration file {self.calibration_fpath} does not match the motors "
                    f"found ({'; '.join(problems)}); refusing to move. Recalibrate with `robokit calibrate`"
                )
            if problems:  # the motors were reset or swapped: the file is the reference
                logger.info(
                    "%r: writing calibration from %s to the motors (%s)",
                    self,
                    self.calibration_fpath,
                    problems[0],
                )
                self.bus.disable_torque()
                self.bus.write_calibration(self.bus.calibration)
            self._calibration_ok = True
        elif calibrate:
            self.calibrate()
        else:
            logger.warning(
                "%r has no calibration (%s); it will refuse to move until `robokit calibrate`",
                self,
                self.calibration_fpath,
            )

    def calibrate(self) -> None:
        if not self.bus.is_connected:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        calibration = interactive_calibration(self.bus, repr(self), self.full_turn_motors, self.input_fn)
        save_calibration(self.calibration_fpath, calibration)
        self._calibration_ok = True
        print(f"Calibration saved to {self.calibration_fpath}")

    def _joint_positions(self) -> dict[str, float]:
        if not self.bus.is_connected:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        return {f"{m}.pos": float(v) for m, v in self.bus.sync_read("Present_Position").items()}


class ServoArmFollower(_ServoDevice, Robot):
    """A follower arm: observations are joint positions + camera frames; actions are goal positions."""

    config_class = ServoArmConfig

    def __init__(self, config: ServoArmConfig):
        Robot.__init__(self, config)
        self.config: ServoArmConfig = config
        self._init_bus(config.port, config.use_degrees)
        self.cameras: dict[str, Camera] = {name: make_camera(cfg) for name, cfg in config.cameras.items()}

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**{f"{m}.pos": float for m in self.layout}, **{n: c.shape for n, c in self.cameras.items()}}

    @property
    def action_features(self) -> dict[str, Any]:
        return {f"{m}.pos": float for m in self.layout}

    @property
    def action_limits(self) -> dict[str, tuple[float, float]]:
        return joint_limits(self.bus)

    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected and all(c.is_connected for c in self.cameras.values())

    def connect(self, calibrate: bool = True) -> None:
        self._connect_bus(calibrate)
        try:
            self.configure()
            for cam in self.cameras.values():
                cam.connect()
        except BaseException:
            self.disconnect()
            raise
        logger.info("%r connected", self)

    def configure(self) -> None:
        """Position mode and the arm's gains with torque off, then torque on (subclasses add registers)."""
        with self.bus.torque_disabled():
            self.configure_motors()

    def configure_motors(self) -> None:
        for motor in self.bus.motors:
            self.bus.write(
                "Operating_Mode", motor, 0 if self.bus.protocol == "feetech" else 3, normalize=False
            )

    def get_observation(self) -> dict[str, Any]:
        obs: dict[str, Any] = self._joint_positions()
        for name, cam in self.cameras.items():
            obs[name] = cam.async_read()
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if not self.bus.is_connected:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        if not self._calibration_ok:
            raise NotCalibratedError(
                f"{self!r} is not calibrated ({self.calibration_fpath}); refusing to move. Run `robokit calibrate`"
            )
        goal = {}
        for key, value in action.items():
            if key.endswith(".pos") and key[:-4] in self.bus.motors:
                goal[key[:-4]] = float(value)
            elif key not in self.action_features:
                raise KeyError(
                    f"{self!r}.send_action: unknown action key {key!r}; expected {list(self.action_features)}"
                )
        if self.config.max_relative_target is not None:
            present = self.bus.sync_read("Present_Position", list(goal))
            goal = clamp_relative(goal, present, self.config.max_relative_target)
        self.bus.sync_write("Goal_Position", goal)
        return {f"{m}.pos": v for m, v in goal.items()}

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            cam.disconnect()
        self.bus.disconnect(self.config.disable_torque_on_disconnect)
        _LIVE.discard(self)
        logger.info("%r disconnected", self)


def clamp_relative(goal: dict[str, float], present: dict[str, float], max_step: float) -> dict[str, float]:
    """Limit every joint's move to `max_step` from its present position (logs what was clamped)."""
    if max_step <= 0:
        raise ValueError(f"max_relative_target={max_step}, expected > 0")
    out = {}
    for name, target in goal.items():
        lo, hi = present[name] - max_step, present[name] + max_step
        out[name] = min(max(target, lo), hi)
        if out[name] != target:
            logger.debug("clamped %s goal %.2f -> %.2f (max step %.2f)", name, target, out[name], max_step)
    return out


class ServoArmLeader(_ServoDevice, Teleoperator):
    """A leader arm moved by hand: its joint positions are the follower's actions."""

    config_class = ServoLeaderConfig

    def __init__(self, config: ServoLeaderConfig):
        Teleoperator.__init__(self, config)
        self._init_bus(config.port, config.use_degrees)

    @property
    def action_features(self) -> dict[str, Any]:
        return {f"{m}.pos": float for m in self.layout}

    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected

    def connect(self, calibrate: bool = True) -> None:
        self._connect_bus(calibrate)
        try:
            self.configure()
        except BaseException:
            self.disconnect()
            raise

    def configure(self) -> None:
        self.bus.disable_torque()  # moved by hand

    def get_action(self) -> dict[str, float]:
        if not self._calibration_ok:
            raise NotCalibratedError(
                f"{self!r} is not calibrated ({self.calibration_fpath}); run `robokit calibrate`"
            )
        return self._joint_positions()

    def disconnect(self) -> None:
        self.bus.disconnect(disable_torque=True)
        _LIVE.discard(self)
