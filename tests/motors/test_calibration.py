import json

import pytest

from robokit.motors.calibration import (
    MotorCalibration,
    MotorNormMode,
    load_calibration,
    normalize,
    save_calibration,
    unnormalize,
)

CAL = MotorCalibration(id=1, drive_mode=0, homing_offset=-100, range_min=1000, range_max=3000)


def test_file_round_trip(tmp_path):
    path = tmp_path / "robots" / "so101_follower" / "arm.json"
    cal = {"shoulder_pan": CAL, "gripper": MotorCalibration(6, 1, 12, 2000, 3500)}
    save_calibration(path, cal)
    assert load_calibration(path) == cal
    assert json.loads(path.read_text())["gripper"] == {
        "id": 6,
        "drive_mode": 1,
        "homing_offset": 12,
        "range_min": 2000,
        "range_max": 3500,
    }
    path.write_text(json.dumps({"gripper": {"id": 6}}))
    with pytest.raises(ValueError, match="'gripper' has \\['id'\\]"):
        load_calibration(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_calibration(path)


@pytest.mark.parametrize(
    ("mode", "raw", "value"),
    [
        (MotorNormMode.RANGE_M100_100, 1000, -100.0),
        (MotorNormMode.RANGE_M100_100, 2000, 0.0),
        (MotorNormMode.RANGE_M100_100, 3000, 100.0),
        (MotorNormMode.RANGE_0_100, 1500, 25.0),
        (MotorNormMode.DEGREES, 2000, 0.0),
        (MotorNormMode.DEGREES, 2000 + 4095 // 4, 90.0 * (4095 // 4) / (4095 / 4)),
    ],
)
def test_normalize_values(mode, raw, value):
    assert normalize(raw, CAL, mode, 4096) == pytest.approx(value)
    assert unnormalize(value, CAL, mode, 4096) == raw


def test_bounded_modes_clamp_and_drive_mode_flips():
    assert normalize(5000, CAL, MotorNormMode.RANGE_M100_100, 4096) == 100.0
    assert unnormalize(250.0, CAL, MotorNormMode.RANGE_M100_100, 4096) == 3000
    flipped = MotorCalibration(1, 1, 0, 1000, 3000)
    assert normalize(1500, flipped, MotorNormMode.RANGE_M100_100, 4096) == pytest.approx(50.0)
    assert normalize(1500, flipped, MotorNormMode.RANGE_0_100, 4096) == pytest.approx(75.0)
    assert unnormalize(50.0, flipped, MotorNormMode.RANGE_M100_100, 4096) == 1500
    with pytest.raises(ValueError, match="recalibrate"):
        normalize(1000, MotorCalibration(1, 0, 0, 2000, 2000), MotorNormMode.RANGE_0_100, 4096)
