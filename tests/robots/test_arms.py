"""Followers and leaders on virtual arms: connect / observe / act / disconnect over real pty traffic."""

import time

import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("dynamixel_sdk")

from robokit.cameras import CameraConfig  # noqa: E402
from robokit.motors.calibration import load_calibration, save_calibration  # noqa: E402
from robokit.robots.registry import make_robot, make_teleoperator  # noqa: E402
from robokit.robots.virtual import VirtualArm  # noqa: E402


def wait_for(predicate, timeout=2.0):
    """Sync write has no reply: give the emulator a moment to apply it."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def test_so101_teleoperation_loop(tmp_path):
    with (
        VirtualArm("so101", "f1", tmp_path) as follower_arm,
        VirtualArm("so101_leader", "l1", tmp_path) as leader_arm,
    ):
        robot = make_robot(
            "so101_follower",
            port=follower_arm.port,
            id="f1",
            calibration_dir=str(tmp_path),
            max_relative_target=20.0,
            cameras={"front": CameraConfig("synthetic", width=64, height=48)},
        )
        leader = make_teleoperator(
            "so101_leader", port=leader_arm.port, id="l1", calibration_dir=str(tmp_path)
        )
        with robot, leader:
            assert robot.is_calibrated and leader.is_calibrated
            # torque on for the follower, off for the leader
            assert [s.get("Torque_Enable") for s in follower_arm.emulator.servos] == [1] * 6
            assert [s.get("Torque_Enable") for s in leader_arm.emulator.servos] == [0] * 6
            obs = robot.get_observation()
            assert set(obs) == set(robot.observation_features)
            assert obs["front"].shape == (48, 64, 3) and obs["shoulder_pan.pos"] == pytest.approx(
                0.1, abs=0.2
            )

            # a human moves the leader: shoulder_pan to 3/4 of its range (+50), gripper to range max (100)
            leader_arm.emulator.servo(1).set_position(2560)
            leader_arm.emulator.servo(6).set_position(3072)
            action = leader.get_action()
            assert action["shoulder_pan.pos"] == pytest.approx(50.0) and action[
                "gripper.pos"
            ] == pytest.approx(100.0)
            sent = robot.send_action(action)
            # max_relative_target clamps each step to 20 units from the present position
            assert sent["shoulder_pan.pos"] == pytest.approx(obs["shoulder_pan.pos"] + 20.0, abs=1e-6)
            assert sent["gripper.pos"] == pytest.approx(obs["gripper.pos"] + 20.0, abs=1e-6)
            assert sent["elbow_flex.pos"] == pytest.approx(action["elbow_flex.pos"])
            # the goal register holds the clamped step in raw steps: 2048 + 20/200 * 2048
            goal = follower_arm.emulator.servo(1)
            assert wait_for(lambda: abs(goal.get("Goal_Position") - (2048 + 0.1 * 2048 + 1)) <= 1), goal.get(
                "Goal_Position"
            )
            for _ in range(40):  # keep following: the follower converges on the leader
                robot.send_action(leader.get_action())
                time.sleep(0.01)
            assert robot.get_observation()["shoulder_pan.pos"] == pytest.approx(50.0, abs=1.0)
        assert [s.get("Torque_Enable") for s in follower_arm.emulator.servos] == [0] * 6  # released on exit


def test_so101_configure_registers(tmp_path):
    with VirtualArm("so101", "f", tmp_path) as arm:
        with make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path)):
            gripper = arm.emulator.servo(6)
            assert gripper.get("Max_Torque_Limit") == 500 and gripper.get("P_Coefficient") == 16
            assert arm.emulator.servo(1).get("Return_Delay_Time") == 0


def test_refuses_to_move_without_matching_calibration(tmp_path):
    with VirtualArm("so101", "f", tmp_path) as arm:
        robot = make_robot("so101_follower", port=arm.port, id="other", calibration_dir=str(tmp_path))
        robot.connect(calibrate=False)
        try:
            with pytest.raises(RuntimeError, match="not calibrated"):
                robot.send_action({"shoulder_pan.pos": 0.0})
        finally:
            robot.disconnect()
        # a calibration naming other motor ids than the bus has
        path = arm.calibration_path
        cal = load_calibration(path)
        cal["gripper"].id = 9
        save_calibration(path, cal)
        robot = make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path))
        with pytest.raises(RuntimeError, match="refusing to move"):
            robot.connect()
        assert not robot.is_connected


def test_calibration_file_restored_to_reset_motors(tmp_path):
    with VirtualArm("so101", "f", tmp_path) as arm:
        arm.emulator.servo(3)._set("Min_Position_Limit", 0)  # e.g. motor swapped for a factory-fresh one
        with make_robot("so101_follower", port=arm.port, id="f", calibration_dir=str(tmp_path)) as robot:
            assert robot.is_calibrated
            assert arm.emulator.servo(3).get("Min_Position_Limit") == 1024


def test_interactive_calibration(tmp_path):
    with VirtualArm("so101_leader") as arm:
        em = arm.emulator
        prompts = []

        def fake_user(prompt):
            prompts.append(prompt)
            if len(prompts) == 1:  # "move to the middle": the arm rests at 3000 raw
                for s in em.servos:
                    s.set_position(3000)
            else:  # sweep every joint from 1000 to 3500 raw while positions are recorded
                for pos in (1000, 3500, 3000):
                    for s in em.servos:
                        s.set_position(pos)
                    time.sleep(0.1)
            return ""

        leader = make_teleoperator("so101_leader", port=arm.port, id="new", calibration_dir=str(tmp_path))
        leader.input_fn = fake_user
        leader.connect()  # no file: runs the interactive calibration
        try:
            cal = load_calibration(leader.calibration_fpath)
            # homing: 3000 raw reads as 2047; the sweep 1000..3500 raw is 2047-2000 .. 2047+500
            assert cal["shoulder_pan"].homing_offset == 3000 - 2047
            assert (cal["shoulder_pan"].range_min, cal["shoulder_pan"].range_max) == (47, 2547)
            assert (cal["wrist_roll"].range_min, cal["wrist_roll"].range_max) == (0, 4095)
            assert leader.get_action()["shoulder_pan.pos"] == pytest.approx(
                (2047 - 47) / 2500 * 200 - 100
            )  # 60
        finally:
            leader.disconnect()


def test_koch_follower_and_leader(tmp_path):
    with VirtualArm("koch", "k", tmp_path) as arm, VirtualArm("koch_leader", "kl", tmp_path) as leader_arm:
        with (
            make_robot("koch_follower", port=arm.port, id="k", calibration_dir=str(tmp_path)) as robot,
            make_teleoperator(
                "koch_leader", port=leader_arm.port, id="kl", calibration_dir=str(tmp_path)
            ) as leader,
        ):
            assert (
                arm.emulator.servo(6).get("Operating_Mode") == 5
                and arm.emulator.servo(1).get("Operating_Mode") == 4
            )
            leader_arm.emulator.servo(2).set_position(1536)  # -50
            sent = robot.send_action(leader.get_action())
            assert sent["shoulder_lift.pos"] == pytest.approx(-50.0)
            assert wait_for(lambda: arm.emulator.servo(2).get("Goal_Position") == 1536)
            assert set(robot.get_observation()) == {f"{m}.pos" for m in robot.layout}


def test_bimanual_so101(tmp_path):
    with VirtualArm("bi_so101", "bi", tmp_path) as arm:
        robot = make_robot(
            "bi_so101_follower",
            left_port=arm.ports["left"],
            right_port=arm.ports["right"],
            id="bi",
            calibration_dir=str(tmp_path),
            cameras={"top": CameraConfig("synthetic", width=32, height=24)},
        )
        assert robot.action_features["left_shoulder_pan.pos"] is float and len(robot.action_features) == 12
        with robot:
            obs = robot.get_observation()
            assert set(obs) == set(robot.observation_features) and obs["top"].shape == (24, 32, 3)
            sent = robot.send_action({"left_gripper.pos": 100.0, "right_shoulder_pan.pos": -50.0})
            assert sent == {"left_gripper.pos": 100.0, "right_shoulder_pan.pos": -50.0}
            assert wait_for(lambda: arm.sides["left"].emulator.servo(6).get("Goal_Position") == 3072)
            assert wait_for(lambda: arm.sides["right"].emulator.servo(1).get("Goal_Position") == 1536)
            with pytest.raises(KeyError, match="'left_' or 'right_'"):
                robot.send_action({"gripper.pos": 1.0})


def test_aloha_shadows_follow_and_step_is_clamped(tmp_path):
    with VirtualArm("aloha", "a", tmp_path) as arm, VirtualArm("aloha_leader", "al", tmp_path) as leader_arm:
        robot = make_robot(
            "aloha",
            left_port=arm.ports["left"],
            right_port=arm.ports["right"],
            id="a",
            calibration_dir=str(tmp_path),
        )
        leader = make_teleoperator(
            "aloha_leader",
            left_port=leader_arm.ports["left"],
            right_port=leader_arm.ports["right"],
            id="al",
            calibration_dir=str(tmp_path),
        )
        assert "left_shoulder_shadow.pos" not in robot.action_features and len(robot.action_features) == 14
        with robot, leader:
            leader_arm.sides["right"].emulator.servo(2).set_position(2560)  # right shoulder to +50
            action = leader.get_action()
            assert action["right_shoulder.pos"] == pytest.approx(50.0) and set(action) == set(
                robot.action_features
            )
            sent = robot.send_action(action)
            assert sent["right_shoulder.pos"] == pytest.approx(5.0, abs=0.1)  # ALOHA's default 5-unit clamp
            right = arm.sides["right"].emulator
            # the shadow gets the mirrored goal: +5 on the primary is -5 (2048 - 51 steps) on the shadow
            assert wait_for(lambda: right.servo(3).get("Goal_Position") == 2048 - 51)
            assert right.servo(2).get("Goal_Position") == 2048 + 51


@pytest.mark.parametrize("arm_type", ["hope_jr_arm", "so100_follower", "moss_follower"])
def test_other_feetech_arms_connect_observe_act(tmp_path, arm_type):
    from robokit.robots.registry import VIRTUAL_ARMS

    virtual = {v: k for k, v in VIRTUAL_ARMS.items()}[arm_type]
    with VirtualArm(virtual, "x", tmp_path) as arm:
        with make_robot(arm_type, port=arm.port, id="x", calibration_dir=str(tmp_path)) as robot:
            first = next(iter(robot.action_features))
            assert set(robot.get_observation()) == set(robot.observation_features)
            assert robot.send_action({first: 50.0}) == {first: 50.0}
            assert wait_for(lambda: arm.emulator.servo(1).get("Goal_Position") == 2560)


def test_torque_released_at_process_exit(tmp_path):
    """A script that forgets disconnect(): the atexit hook still releases torque and closes the port."""
    import subprocess
    import sys

    with VirtualArm("so101", "f", tmp_path) as arm:
        script = (
            "from robokit.robots.registry import make_robot\n"
            f"robot = make_robot('so101_follower', port={arm.port!r}, id='f', calibration_dir={str(tmp_path)!r})\n"
            "robot.connect()\n"
            "robot.send_action({'shoulder_pan.pos': 10.0})\n"
            "print('torque on', flush=True)\n"
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "torque on" in out.stdout, out.stderr
        assert [s.get("Torque_Enable") for s in arm.emulator.servos] == [0] * 6
        assert arm.emulator.servo(1).get("Goal_Position") == pytest.approx(2048 + 102, abs=1)
