"""The Teleoperator contract: a device a human moves, producing actions for a Robot.

It mirrors `Robot`: `action_features` describes what `get_action()` returns (the same keys as
the robot's `action_features`, e.g. `"shoulder_pan.pos"`), and `send_feedback()` carries force
or state back to devices that can render it (most cannot and ignore it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robokit.robots.robot import DEFAULT_CALIBRATION_DIR


@dataclass
class TeleoperatorConfig:
    """Fields every teleoperator config shares."""

    id: str = "default"
    """Name of this device; its calibration is stored as `<calibration_dir>/teleoperators/<type>/<id>.json`."""
    calibration_dir: str | None = None
    """Folder holding calibration files (default ~/.cache/robokit/calibration)."""


class Teleoperator(abc.ABC):
    """A device producing actions: leader arm, keyboard, gamepad."""

    name: str = "teleoperator"

    def __init__(self, config: TeleoperatorConfig):
        self.config = config
        self.id = config.id
        base = (
            Path(config.calibration_dir).expanduser() if config.calibration_dir else DEFAULT_CALIBRATION_DIR
        )
        self.calibration_dir = base / "teleoperators" / self.name
        self.calibration_fpath = self.calibration_dir / f"{self.id}.json"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, Any]:
        """`{"<joint>.pos": float, ...}` (or `"x.vel"` etc. for keyboards); valid before connect()."""

    @property
    def feedback_features(self) -> dict[str, Any]:
        """What `send_feedback` accepts; empty for devices without feedback."""
        return {}

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @property
    def is_calibrated(self) -> bool:
        return True

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    def calibrate(self) -> None:
        """Record and save the calibration (devices without one do nothing)."""

    def configure(self) -> None:
        """Write run-time settings to the device."""

    @abc.abstractmethod
    def get_action(self) -> dict[str, Any]:
        """The action the human currently commands."""

    def send_feedback(self, feedback: dict[str, Any]) -> None:
        """Render feedback on the device; the default ignores it."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    def __enter__(self) -> "Teleoperator":
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        if self.is_connected:
            self.disconnect()
