"""Per-motor calibration (homing offset, range of motion, drive direction) and position normalization.

A calibration file is JSON, one per robot id (LeRobot's layout, so files carry over):

    {"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1187, "range_min": 712, "range_max": 3390}, ...}

Normalization maps raw encoder steps inside [range_min, range_max] to the motor's mode:
  - "degrees":     0 at the middle of the range, 360 per turn
  - "range_m100_100": -100 at range_min, +100 at range_max
  - "range_0_100":    0 at range_min, 100 at range_max (grippers)
`drive_mode = 1` flips the direction (so a mirrored arm reads the same as its twin).
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from pathlib import Path


class MotorNormMode(str, enum.Enum):
    DEGREES = "degrees"
    RANGE_M100_100 = "range_m100_100"
    RANGE_0_100 = "range_0_100"


@dataclass
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


def save_calibration(path: str | Path, calibration: dict[str, MotorCalibration]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({name: asdict(cal) for name, cal in calibration.items()}, indent=2))
    tmp.replace(path)


def load_calibration(path: str | Path) -> dict[str, MotorCalibration]:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"calibration file {path}: not valid JSON ({exc})") from exc
    out = {}
    fields = {"id", "drive_mode", "homing_offset", "range_min", "range_max"}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != fields:
            have = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            raise ValueError(
                f"calibration file {path}: motor {name!r} has {have}, expected keys {sorted(fields)}"
            )
        out[name] = MotorCalibration(**{k: int(v) for k, v in entry.items()})
    return out


def normalize(raw: float, cal: MotorCalibration, mode: MotorNormMode, resolution: int) -> float:
    """Raw encoder steps -> normalized value."""
    lo, hi = cal.range_min, cal.range_max
    if mode == MotorNormMode.DEGREES:
        value = (raw - (lo + hi) / 2) * 360.0 / (resolution - 1)
        return -value if cal.drive_mode else value
    if hi <= lo:
        raise ValueError(f"motor id {cal.id}: calibration range_min={lo} >= range_max={hi}; recalibrate")
    bounded = min(max(raw, lo), hi)
    if mode == MotorNormMode.RANGE_M100_100:
        value = (bounded - lo) / (hi - lo) * 200.0 - 100.0
        return -value if cal.drive_mode else value
    value = (bounded - lo) / (hi - lo) * 100.0
    return 100.0 - value if cal.drive_mode else value


def unnormalize(value: float, cal: MotorCalibration, mode: MotorNormMode, resolution: int) -> int:
    """Normalized value -> raw encoder steps (clamped to the calibrated range for the bounded modes)."""
    lo, hi = cal.range_min, cal.range_max
    if mode == MotorNormMode.DEGREES:
        value = -value if cal.drive_mode else value
        return int(round(value * (resolution - 1) / 360.0 + (lo + hi) / 2))
    if mode == MotorNormMode.RANGE_M100_100:
        value = -value if cal.drive_mode else value
        value = min(max(value, -100.0), 100.0)
        return int(round((value + 100.0) / 200.0 * (hi - lo) + lo))
    value = 100.0 - value if cal.drive_mode else value
    value = min(max(value, 0.0), 100.0)
    return int(round(value / 100.0 * (hi - lo) + lo))
