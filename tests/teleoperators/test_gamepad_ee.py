"""The gamepad drives an arm in end-effector space, as docs/hardware.md says (issue 17: it gave base velocities only)."""

import pytest

from robokit.commands.hardware import TeleopArgs
from robokit.teleoperators.keyboard import GamepadTeleop, gamepad_to_ee


def test_sticks_and_bumpers_map_to_end_effector_deltas():
    axes = [0.05, -1.0, 0.0, 0.0, -0.5]  # left stick pushed up (x forward), right stick half up (z)
    buttons = [False, False, False, False, False, True]  # RB: open the gripper
    assert gamepad_to_ee(axes, buttons) == {"delta_x": 1.0, "delta_y": -0.0, "delta_z": 0.5, "gripper": 1.0}
    assert gamepad_to_ee([-1.0, 0.0, 0.0, 0.0, 0.0], [False] * 4 + [True, False])["delta_y"] == 1.0  # left
    assert gamepad_to_ee([0.0] * 5, [False] * 4 + [True, False])["gripper"] == -1.0  # LB closes


def test_gamepad_with_an_arm_is_end_effector_control(tmp_path):
    pytest.importorskip("scservo_sdk")
    from robokit.robots.registry import make_robot
    from robokit.robots.virtual import VirtualArm
    from robokit.teleoperators.end_effector import EndEffectorTeleop

    with VirtualArm("so101", "f", tmp_path) as arm:
        robot = make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path))
        teleop = TeleopArgs(type="gamepad").build_for(robot, fps=30)
        assert isinstance(teleop, EndEffectorTeleop) and isinstance(teleop.source, GamepadTeleop)
        assert teleop.source.config.mode == "ee" and teleop.action_features == robot.action_features
    base = TeleopArgs(type="gamepad").build_for(make_robot("lekiwi", port="/dev/null"), fps=30)
    assert isinstance(base, GamepadTeleop) and set(base.action_features) == {"x.vel", "y.vel", "theta.vel"}


def test_a_bad_mode_is_named():
    with pytest.raises(ValueError, match=r"GamepadTeleopConfig.mode='arm', expected 'base'"):
        TeleopArgs(type="gamepad", mode="arm").build()


def test_no_gamepad_is_a_clear_error_without_audio_noise(capfd):
    pytest.importorskip("pygame")
    from robokit.robots.registry import make_teleoperator

    pad = make_teleoperator("gamepad", joystick_index=7)
    with pytest.raises(ConnectionError, match=r"gamepad 7: pygame sees \d+ joystick\(s\); plug a gamepad in"):
        pad.connect()
    assert "ALSA" not in capfd.readouterr().err  # pygame.init() opened the audio device too


def test_teleoperate_without_a_gamepad_prints_no_pygame_banner():
    """A missing gamepad through the CLI: the error line, without pygame's 'Hello from the pygame community'."""
    pytest.importorskip("pygame")
    pytest.importorskip("gym_pusht")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "robokit.cli", "teleoperate", "--robot.type", "sim", "--robot.env",
                           "pusht", "--teleop.type", "gamepad", "--teleop.mode", "base", "--duration-s", "1"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "plug a gamepad in, or use --teleop.type keyboard" in proc.stderr, proc.stderr
    assert "pygame community" not in proc.stdout + proc.stderr
