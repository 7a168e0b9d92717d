"""Stretch 3 and Reachy 2 driven through FAKES of their vendors' SDK surfaces (see fake_vendor_sdks.py)."""

import importlib.util
import pathlib
import sys

import pytest

from robokit.robots.registry import make_robot

_spec = importlib.util.spec_from_file_location(
    "fake_vendor_sdks", pathlib.Path(__file__).with_name("fake_vendor_sdks.py")
)
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)


def test_stretch3_maps_features_to_sdk_calls(monkeypatch):
    for name, module in fakes.stretch_body_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    robot = make_robot("stretch3", max_relative_target=0.05)
    with robot:
        sdk = fakes.FakeStretchRobot.instances[-1]
        assert ("home",) in sdk.log and robot.is_calibrated  # homed on connect
        obs = robot.get_observation()
        assert (
            obs["lift.pos"] == 0.5
            and obs["head_tilt.pos"] == -0.2
            and set(obs) == set(robot.observation_features)
        )
        sent = robot.send_action({"lift.pos": 0.9, "wrist_yaw.pos": 1.01, "x.vel": 0.1})
        assert sent["lift.pos"] == pytest.approx(0.55)  # clamped to 0.05 from 0.5
        assert ("lift", "move_to", pytest.approx(0.55)) in sdk.log
        assert ("end_of_arm", "move_to", "wrist_yaw", 1.01) in sdk.log
        assert ("base", "set_velocity", 0.1, 0.0) in sdk.log and sdk.log[-1] == ("push_command",)
        with pytest.raises(KeyError, match="elbow"):
            robot.send_action({"elbow.pos": 1.0})
    assert sdk.log[-1] == ("stop",)


def test_stretch3_missing_sdk_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "stretch_body", None)
    with pytest.raises(ImportError, match="hello-robot-stretch-body"):
        make_robot("stretch3").connect()


def test_reachy2_maps_features_to_sdk_calls(monkeypatch):
    for name, module in fakes.reachy2_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    robot = make_robot("reachy2", ip_address="10.0.0.2")
    assert len(robot.action_features) == 7 * 2 + 2 + 3 + 3
    with robot:
        sdk = fakes.FakeReachySDK.instances[-1]
        assert sdk.host == "10.0.0.2" and ("turn_on",) in sdk.log
        assert robot.get_observation()["r_elbow_pitch.pos"] == -90.0
        robot.send_action({"r_elbow_pitch.pos": -45.0, "l_gripper.pos": 30.0, "theta.vel": 10.0})
        assert sdk.r_arm.elbow.pitch.goal_position == -45.0 and sdk.l_arm.gripper.goal_position == 30.0
        assert ("send_goal_positions",) in sdk.log and ("set_goal_speed", 0.0, 0.0, 10.0) in sdk.log
    assert sdk.log[-2:] == [("turn_off_smoothly",), ("disconnect",)]
