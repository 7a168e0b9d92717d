"""LeKiwi: omni-wheel kinematics, the robot on a virtual bus, and host <-> client over ZeroMQ on 127.0.0.1."""

import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("zmq")

from robokit.cameras import CameraConfig  # noqa: E402
from robokit.robots.lekiwi import BaseKinematics  # noqa: E402
from robokit.robots.lekiwi_remote import LeKiwiClient, LeKiwiClientConfig, LeKiwiHost  # noqa: E402
from robokit.robots.registry import make_robot, make_teleoperator  # noqa: E402
from robokit.robots.virtual import VirtualArm  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kinematics_round_trip():
    kin = BaseKinematics(0.05, 0.125)
    wheels = kin.body_to_wheels(0.2, 0.0, 0.0)
    assert wheels[1] == pytest.approx(0.0, abs=1e-9)  # the back wheel does not turn when driving forward
    assert wheels[0] == pytest.approx(-wheels[2])
    spin = kin.body_to_wheels(0.0, 0.0, 90.0)
    assert np.allclose(spin, spin[0])  # turning in place: all wheels alike
    np.testing.assert_allclose(
        kin.wheels_to_body(kin.body_to_wheels(0.1, -0.05, 30.0)), (0.1, -0.05, 30.0), atol=1e-9
    )


def test_keyboard_teleop_without_display():
    teleop = make_teleoperator("keyboard", use_pynput=False)
    with teleop:
        assert teleop.get_action() == {"x.vel": 0.0, "y.vel": 0.0, "theta.vel": 0.0}
        teleop.press("w")
        teleop.press("z")
        assert teleop.get_action() == {"x.vel": 0.1, "y.vel": 0.0, "theta.vel": 30.0}
        teleop.press("r")  # faster
        teleop.release("z")
        assert teleop.get_action() == {"x.vel": 0.2, "y.vel": 0.0, "theta.vel": 0.0}


def test_lekiwi_host_and_client(tmp_path):
    with VirtualArm("lekiwi", "kiwi", tmp_path) as arm:
        robot = make_robot(
            "lekiwi",
            port=arm.port,
            id="kiwi",
            calibration_dir=str(tmp_path),
            cameras={"front": CameraConfig("synthetic", width=64, height=48)},
        )
        cmd_port, obs_port = _free_port(), _free_port()
        with robot:
            wheel = arm.emulator.servo(7)
            assert wheel.get("Operating_Mode") == 1 and arm.emulator.servo(1).get("Operating_Mode") == 0
            host = LeKiwiHost(robot, cmd_port, obs_port, fps=50, watchdog_s=0.3, bind="127.0.0.1")
            thread = threading.Thread(target=host.serve, daemon=True)
            thread.start()
            client = LeKiwiClient(
                LeKiwiClientConfig(
                    port_commands=cmd_port, port_observations=obs_port, cameras={"front": (48, 64, 3)}
                )
            )
            try:
                client.connect()
                expected = robot.wheel_commands(0.1, 0.0, 0.0)
                deadline = time.monotonic() + 5
                while (
                    wheel.get("Goal_Velocity", signed=True) != expected["base_left_wheel"]
                    and time.monotonic() < deadline
                ):
                    client.send_action({"x.vel": 0.1, "arm_shoulder_pan.pos": 20.0})
                    time.sleep(0.02)
                assert wheel.get("Goal_Velocity", signed=True) == expected["base_left_wheel"] != 0
                assert arm.emulator.servo(1).get("Goal_Position") == pytest.approx(2048 + 205, abs=1)
                obs = client.get_observation()
                assert obs["front"].shape == (48, 64, 3) and set(obs) == set(client.observation_features)
                # the wheels turn in the emulator: the observed base velocity comes back from Present_Velocity
                deadline = time.monotonic() + 2
                while abs(obs["x.vel"] - 0.1) > 0.01 and time.monotonic() < deadline:
                    obs = client.get_observation()
                assert obs["x.vel"] == pytest.approx(0.1, abs=0.01)
                # silence: the watchdog stops the base
                deadline = time.monotonic() + 3
                while wheel.get("Goal_Velocity") != 0 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert wheel.get("Goal_Velocity") == 0 and host.watchdog_stops >= 1
            finally:
                client.disconnect()
                host.close()  # stops the serving thread first
                thread.join(timeout=5)


def test_gamepad_mapping_and_lekiwi_leader(tmp_path):
    from robokit.teleoperators.keyboard import gamepad_to_base

    # stick up (axis 1 = -1) drives forward, right stick right (axis 3 = +1) turns clockwise, small noise is ignored
    assert gamepad_to_base([0.05, -1.0, 0.0, 1.0]) == {"x.vel": 0.3, "y.vel": -0.0, "theta.vel": -90.0}
    with VirtualArm("so101_leader", "kl", tmp_path) as arm:
        leader = make_teleoperator(
            "lekiwi_leader", port=arm.port, id="kl", calibration_dir=str(tmp_path), use_pynput=False
        )
        with leader:
            arm.emulator.servo(1).set_position(2560)
            leader.keyboard.press("a")
            action = leader.get_action()
            assert action["arm_shoulder_pan.pos"] == pytest.approx(50.0) and action["y.vel"] == 0.1
            assert set(action) == set(make_robot("lekiwi", port="/dev/null").action_features)


def test_lekiwi_client_reaches_a_host_on_other_ports(tmp_path):
    """`--robot.port-commands / --robot.port-observations` reach a `lekiwi-host` that is not on 5555/5556."""
    from robokit.commands.hardware import RobotArgs

    with VirtualArm("lekiwi", "kiwi", tmp_path) as arm:
        robot = make_robot("lekiwi", port=arm.port, id="kiwi", calibration_dir=str(tmp_path))
        cmd_port, obs_port = _free_port(), _free_port()
        with robot:
            host = LeKiwiHost(robot, cmd_port, obs_port, fps=50, bind="127.0.0.1")
            thread = threading.Thread(target=host.serve, daemon=True)
            thread.start()
            client = RobotArgs(type="lekiwi_client", port_commands=cmd_port, port_observations=obs_port).build()
            try:
                with client:
                    assert set(client.get_observation()) == set(client.action_features)
                    client.send_action({"arm_shoulder_pan.pos": 10.0})
                    deadline = time.monotonic() + 5
                    while host.commands_applied == 0 and time.monotonic() < deadline:
                        time.sleep(0.01)
                    assert host.commands_applied >= 1
            finally:
                host.close()
                thread.join(timeout=5)


def test_virtual_arm_lekiwi_leader(tmp_path, capsys):
    """`robokit virtual-arm lekiwi_leader` serves the SO-101 leader arm that `lekiwi_leader` reads."""
    from robokit.cli import main

    assert main(["virtual-arm", "lekiwi_leader", "--id", "kl", "--calibration-dir", str(tmp_path),
                 "--duration-s", "0.2"]) == 0
    assert "lekiwi_leader: /dev/pts/" in capsys.readouterr().out
    with VirtualArm("lekiwi_leader", "kl", tmp_path) as arm:
        leader = make_teleoperator("lekiwi_leader", port=arm.port, id="kl", calibration_dir=str(tmp_path),
                                   use_pynput=False)
        with leader:
            assert leader.is_calibrated
            assert leader.get_action()["arm_shoulder_pan.pos"] == pytest.approx(0.0, abs=0.1)


def test_lekiwi_host_ignores_a_non_finite_command(tmp_path, caplog):
    """A NaN from the network is refused by the robot's action check; the host logs it and goes on."""
    import json
    import logging

    import zmq

    with VirtualArm("lekiwi", "kiwi", tmp_path) as arm:
        robot = make_robot("lekiwi", port=arm.port, id="kiwi", calibration_dir=str(tmp_path))
        cmd_port, obs_port = _free_port(), _free_port()
        with robot, caplog.at_level(logging.WARNING, logger="robokit.robots.lekiwi_remote"):
            host = LeKiwiHost(robot, cmd_port, obs_port, fps=50, bind="127.0.0.1")
            thread = threading.Thread(target=host.serve, daemon=True)
            thread.start()
            context = zmq.Context()
            push = context.socket(zmq.PUSH)
            push.connect(f"tcp://127.0.0.1:{cmd_port}")
            try:
                push.send(json.dumps({"x.vel": float("nan")}).encode())  # json writes NaN
                deadline = time.monotonic() + 5
                while "ignored a bad command" not in caplog.text and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert "'x.vel'=nan is not finite" in caplog.text and thread.is_alive()
                assert arm.emulator.servo(7).get("Goal_Velocity") == 0
                push.send(json.dumps({"x.vel": 0.1}).encode())
                while host.commands_applied == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert host.commands_applied == 1
            finally:
                push.close(linger=0)
                context.term()
                host.close()
                thread.join(timeout=5)
