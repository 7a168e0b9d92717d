"""Every robot refuses a non-finite or absurd action by name before anything reaches the hardware (issue 17:
inf / 1e9 drove a joint to the end of its range; NaN raised "cannot convert float NaN to integer")."""

import importlib
import math
import time

import pytest

from robokit.robots.registry import ROBOTS


@pytest.mark.parametrize("type_name", sorted(ROBOTS))
def test_every_robot_checks_its_actions(type_name):
    module, cls = ROBOTS[type_name].split(":")
    try:
        robot_class = getattr(importlib.import_module(module), cls)
    except ImportError as exc:  # e.g. the sim extra is not installed
        pytest.skip(f"{type_name}: {exc}")
    assert getattr(robot_class.send_action, "checks_action", False), f"{type_name} skips check_action"


@pytest.mark.parametrize(
    ("value", "said"),
    [(math.nan, "is not finite"), (math.inf, "is not finite"), (-math.inf, "is not finite"),
     (1e9, "far outside"), ("fast", "is not a number")],
)
def test_bad_values_never_reach_the_servos(tmp_path, value, said):
    pytest.importorskip("scservo_sdk")
    from robokit.robots.registry import make_robot
    from robokit.robots.virtual import VirtualArm

    with VirtualArm("so101", "f", tmp_path) as arm:
        robot = make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path))
        with robot:
            goals = [s.get("Goal_Position") for s in arm.emulator.servos]
            packets = arm.emulator.packets_received
            action = {**{k: 0.0 for k in robot.action_features}, "elbow_flex.pos": value}
            with pytest.raises(ValueError, match=rf"'elbow_flex\.pos'=.*{said}.*nothing was sent"):
                robot.send_action(action)
            assert arm.emulator.packets_received == packets  # not a byte went out
            assert [s.get("Goal_Position") for s in arm.emulator.servos] == goals
            # an overshoot near the range is still clamped and sent, as before
            sent = robot.send_action({**action, "elbow_flex.pos": 120.0})
            assert sent["elbow_flex.pos"] == 120.0
            deadline = time.monotonic() + 2  # a sync write has no reply: give the emulator a moment
            while arm.emulator.servo(3).get("Goal_Position") != 3072 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert arm.emulator.servo(3).get("Goal_Position") == 3072  # the end of the calibrated range


def test_bimanual_names_the_side(tmp_path):
    pytest.importorskip("scservo_sdk")
    from robokit.robots.registry import make_robot

    robot = make_robot("bi_so101_follower", left_port="/dev/null", right_port="/dev/null",
                       calibration_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"'right_gripper\.pos'=300 is far outside the accepted \[-50, 150\]"):
        robot.send_action({"right_gripper.pos": 300.0})
