"""Keyboard end-effector control of a virtual SO-101: key events -> IK -> joint targets -> real servo traffic."""

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")

from robokit.commands.hardware import TeleopArgs, teleoperate
from robokit.control.teleoperate import teleoperate_loop
from robokit.robots.kinematics import SO101_CHAIN
from robokit.robots.registry import make_robot
from robokit.robots.virtual import VirtualArm
from robokit.teleoperators.end_effector import EndEffectorTeleop

FPS = 50
JOINTS = [j.name for j in SO101_CHAIN.joints]


@pytest.fixture(autouse=True)
def no_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)  # keys come only through press() / release()


def gripper_point(robot) -> np.ndarray:
    """Forward kinematics of the joints the servos report (virtual arm: +-100 spans +-90 degrees)."""
    obs = robot.get_observation()
    return SO101_CHAIN.position(np.radians([obs[f"{j}.pos"] * 0.9 for j in JOINTS]))


def test_keyboard_drives_so101_in_end_effector_space(tmp_path):
    with VirtualArm("so101", "f", tmp_path) as arm:
        robot = make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path))
        teleop = TeleopArgs(type="keyboard", ee_speed=0.1).build_for(robot, FPS)  # 2 mm per tick
        assert isinstance(teleop, EndEffectorTeleop) and teleop.action_features == robot.action_features
        keyboard = teleop.source
        script = {
            0: ("press", "up"),
            15: ("release", "up"),
            20: ("press", "shift"),
            30: ("release", "shift"),
            31: ("press", "o"),
            36: ("release", "o"),
        }
        ticks = []

        def events():  # called once per tick, before the teleoperator is read
            tick = len(ticks)
            if tick == 0:
                ticks.append(gripper_point(robot))
            else:
                ticks.append(None)
            if tick in script:
                what, key = script[tick]
                getattr(keyboard, what)(key)
            return tick >= 60

        with robot, teleop:
            start_gripper = robot.get_observation()["gripper.pos"]
            teleoperate_loop(robot, teleop, FPS, should_stop=events)
            moved = gripper_point(robot) - ticks[0]
            # 15 ticks forward (x) and 10 up (z) at 2 mm each; encoder steps are ~0.5 mm at this reach
            np.testing.assert_allclose(moved, [0.030, 0.0, 0.020], atol=0.003)
            np.testing.assert_allclose(teleop.target - ticks[0], [0.030, 0.0, 0.020], atol=1e-9)
            # 5 ticks of "o": the gripper opened 5 x 2 units
            assert robot.get_observation()["gripper.pos"] == pytest.approx(start_gripper + 10.0, abs=0.2)
            assert robot.get_observation()["wrist_roll.pos"] == pytest.approx(0.0, abs=0.1)


def test_end_effector_commands_stay_within_joint_limits(tmp_path):
    with VirtualArm("so101", "f", tmp_path) as arm:
        robot = make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path))
        teleop = TeleopArgs(type="keyboard", ee_speed=0.5).build_for(robot, 10)  # 5 cm per tick
        with robot, teleop:
            teleop.source.press("down")  # pull toward the base, then push down through the table
            teleop.source.press("ctrl")
            actions = [teleop.get_action() for _ in range(40)]
            for action in actions:
                assert all(-100.0 <= action[f"{j}.pos"] <= 100.0 for j in JOINTS), action
            assert any(abs(actions[-1][f"{j}.pos"]) > 99.0 for j in JOINTS)  # it went up to a limit
            assert actions[-1] == actions[-2]  # and stays there while the keys are held
            # the commanded point stopped where the arm can be, not 2 m away
            assert np.linalg.norm(teleop.target - SO101_CHAIN.position(teleop.q)) < 1e-3
            robot.send_action(actions[-1])


def test_cli_teleoperate_with_keyboard_holds_the_arm(tmp_path, capsys):
    with VirtualArm("so101", "f", tmp_path) as arm:
        argv = [
            "--robot.port",
            arm.port,
            "--robot.id",
            "f",
            "--robot.calibration-dir",
            str(tmp_path),
            "--teleop.type",
            "keyboard",
            "--fps",
            "30",
            "--duration-s",
            "0.4",
        ]
        assert teleoperate(argv) == 0
        assert "ticks at" in capsys.readouterr().out
        # no key held: every goal is the pose the arm was in (the middle), not a jump
        assert all(abs(s.get("Goal_Position") - 2048) <= 1 for s in arm.emulator.servos)


def test_end_effector_control_needs_an_arm():
    hand = make_robot("hope_jr_hand", port="/dev/null")
    with pytest.raises(ValueError, match="needs an arm with joints"):
        TeleopArgs(type="keyboard", mode="ee").build_for(hand, 30)
    lekiwi_keys = TeleopArgs(type="keyboard").build_for(make_robot("lekiwi", port="/dev/null"), 30)
    assert "x.vel" in lekiwi_keys.action_features  # a robot with a base keeps base motion


def test_without_a_display_the_log_says_no_key_is_read(monkeypatch, caplog):
    """The message named only press()/release() (an API call) and left a terminal user guessing why nothing moved."""
    import logging

    from robokit.robots.registry import make_teleoperator

    monkeypatch.delenv("DISPLAY", raising=False)
    caplog.set_level(logging.INFO, logger="robokit.teleoperators.keyboard")
    keys = make_teleoperator("keyboard")
    keys.connect()
    try:
        assert any("no key is read" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        keys.disconnect()
