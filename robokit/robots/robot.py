"""The Robot contract: named joints and cameras in, actions out.

Every embodiment (a real arm on a servo bus, a bimanual pair, a mobile base, a simulated arm)
implements this small API so that teleoperation, recording, replay and policy control are the
same loops everywhere:

    with make_robot(cfg) as robot:          # connect(); disconnect() on exit, even on errors
        obs = robot.get_observation()       # {"shoulder_pan.pos": 12.5, ..., "front": (H, W, 3) uint8}
        sent = robot.send_action({"shoulder_pan.pos": 10.0, ...})   # what was really sent

Feature convention (LeRobot's): a joint is a key `"<motor>.pos"` with value type `float`; a camera
is a key `"<camera name>"` with value the frame shape `(height, width, 3)`.

Every robot's `send_action` checks the action first (`check_action`, installed by the base class
on each subclass's `send_action`): a value that is not a finite number, or lies far outside what
the robot accepts (`action_limits`), is refused by name before anything reaches the hardware.
"""

from __future__ import annotations

import abc
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from robokit.errors import NotCalibratedError, RobokitError  # noqa: F401 (robots raise it; the motors layer too)

DEFAULT_CALIBRATION_DIR = Path("~/.cache/robokit/calibration").expanduser()


@dataclass
class RobotConfig:
    """Fields every robot config shares; each robot subclasses it."""

    id: str = "default"
    """Name of this particular robot; its calibration is stored as `<calibration_dir>/<robot type>/<id>.json`."""
    calibration_dir: str | None = None
    """Folder holding calibration files (default ~/.cache/robokit/calibration)."""


class DeviceNotConnectedError(RobokitError, RuntimeError):
    """An operation needs `connect()` first."""


class DeviceAlreadyConnectedError(RobokitError, RuntimeError):
    """`connect()` called twice."""


MAX_ABS_ACTION = 1e6
"""Without known limits, an action value beyond this magnitude is refused as absurd."""


def check_action(robot: "Robot", action: Mapping[str, Any]) -> None:
    """Refuse, naming the key, an action value that is not a finite number or is far outside its limits."""
    if not isinstance(action, Mapping):
        raise TypeError(f"{robot!r}.send_action: action is a {type(action).__name__}, expected a dict of floats")
    limits = robot.action_limits
    for key, value in action.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{robot!r}.send_action: {key!r}={value!r} is not a number; nothing was sent"
            ) from None
        if not math.isfinite(number):
            raise ValueError(
                f"{robot!r}.send_action: {key!r}={number} is not finite; nothing was sent "
                "(a policy or teleoperator produced NaN or inf)"
            )
        lo, hi = limits.get(key, (-MAX_ABS_ACTION, MAX_ABS_ACTION))
        if not lo <= number <= hi:
            raise ValueError(
                f"{robot!r}.send_action: {key!r}={number:g} is far outside the accepted [{lo:g}, {hi:g}]; "
                "nothing was sent"
            )


class Robot(abc.ABC):
    """A robot: observations out, actions in. Subclasses set `name` and `config_class`."""

    name: str = "robot"
    """The robot type, e.g. "so101_follower" (also recorded as a dataset's `robot_type`)."""

    def __init_subclass__(cls, **kwargs):
        """Every subclass's own `send_action` runs `check_action` first, so no robot can skip it."""
        super().__init_subclass__(**kwargs)
        impl = cls.__dict__.get("send_action")
        if impl is None or getattr(impl, "checks_action", False) or getattr(impl, "__isabstractmethod__", False):
            return

        @functools.wraps(impl)
        def send_action(self, action):
            check_action(self, action)
            return impl(self, action)

        send_action.checks_action = True
        cls.send_action = send_action

    def __init__(self, config: RobotConfig):
        self.config = config
        self.id = config.id
        base = (
            Path(config.calibration_dir).expanduser() if config.calibration_dir else DEFAULT_CALIBRATION_DIR
        )
        self.calibration_dir = base / "robots" / self.name
        self.calibration_fpath = self.calibration_dir / f"{self.id}.json"

    @property
    def robot_type(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

    # -- description ---------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, Any]:
        """`{"<joint>.pos": float, ..., "<camera>": (H, W, 3)}`; valid before connect()."""

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, Any]:
        """`{"<joint>.pos": float, ...}`; valid before connect()."""

    @property
    def action_limits(self) -> dict[str, tuple[float, float]]:
        """`{key: (low, high)}`: values outside are refused as absurd (not clamped); other keys get
        +-MAX_ABS_ACTION. The bounds are generous: the robot still clamps values near its range."""
        return {}

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @property
    def is_calibrated(self) -> bool:
        """True when the robot holds a calibration matching its hardware (robots without one: True)."""
        return True

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None:
        """Open buses and cameras; run `calibrate()` when `calibrate` and no calibration is stored."""

    def calibrate(self) -> None:
        """Record (interactively) and save the calibration. Robots without one do nothing."""

    def configure(self) -> None:
        """Write run-time settings to the hardware (torque, PID gains, operating modes)."""

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]:
        """Current joint positions (floats) and camera frames (uint8 arrays (H, W, 3))."""

    @abc.abstractmethod
    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Command the robot; returns the action actually sent (after safety clamps)."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release torque (when configured to), close buses and cameras. Safe to call twice."""

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> "Robot":
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        if self.is_connected:
            self.disconnect()
