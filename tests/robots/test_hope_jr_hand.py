"""Hope-JR hand (SCS0009 servos, Feetech protocol 1) and its Homunculus glove, over real pty traffic."""

import time

import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("serial")

from robokit.motors import protocol as P
from robokit.motors.calibration import load_calibration
from robokit.motors.emulator import ServoChainEmulator
from robokit.motors.feetech import FeetechMotorsBus, FeetechSCSMotorsBus
from robokit.motors.motors_bus import Motor
from robokit.robots.hope_jr import HAND_REVERSED_MOTORS, HOPE_JR_HAND_LAYOUT
from robokit.robots.registry import make_robot, make_teleoperator
from robokit.robots.virtual import VirtualArm, virtual_device
from robokit.teleoperators.homunculus_glove import GLOVE_JOINTS, glove_to_hand


def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def test_features_name_every_tendon():
    hand = make_robot("hope_jr_hand", port="/dev/null", id="x")
    assert len(hand.action_features) == 16 and hand.observation_features == hand.action_features
    assert list(hand.action_features)[:5] == [
        "thumb_cmc.pos",
        "thumb_mcp.pos",
        "thumb_pip.pos",
        "thumb_dip.pos",
        "index_radial_flexor.pos",
    ]
    assert [motor_id for motor_id, _ in HOPE_JR_HAND_LAYOUT.values()] == list(range(1, 17))
    glove = make_teleoperator("homunculus_glove", port="/dev/null", id="x")
    assert glove.action_features == hand.action_features  # the glove speaks the hand's joints
    with pytest.raises(ValueError, match="side='middle'"):
        make_robot("hope_jr_hand", port="/dev/null", side="middle")


def test_glove_to_hand_mixes_flexion_and_abduction():
    glove = dict.fromkeys(GLOVE_JOINTS, 0.0)
    glove.update(index_mcp_flexion=100.0, index_mcp_abduction=100.0, pinky_mcp_flexion=50.0, thumb_pip=20.0)
    glove["pinky_mcp_abduction"] = -100.0
    hand = glove_to_hand(glove)
    assert hand["index_radial_flexor.pos"] == pytest.approx(100.0)  # 0.7 * 100 + 0.3 * 100
    assert hand["index_ulnar_flexor.pos"] == pytest.approx(40.0)  # 0.7 * 100 - 0.3 * 100
    assert hand["pinky_radial_flexor.pos"] == pytest.approx(-25.0)  # 0.5 * 50 - 0.5 * 100
    assert hand["pinky_ulnar_flexor.pos"] == pytest.approx(75.0)
    assert hand["thumb_pip.pos"] == 20.0 and len(hand) == 16


def test_hand_follows_glove(tmp_path):
    with (
        VirtualArm("hope_jr_hand", "h", tmp_path) as hand_arm,
        virtual_device("homunculus_glove", calibration_id="g", calibration_dir=tmp_path) as glove_dev,
    ):
        hand = make_robot("hope_jr_hand", port=hand_arm.port, id="h", calibration_dir=str(tmp_path))
        glove = make_teleoperator(
            "homunculus_glove", port=glove_dev.port, id="g", calibration_dir=str(tmp_path), smoothing=1.0
        )
        em = hand_arm.emulator
        with hand, glove:
            assert hand.is_calibrated and glove.is_calibrated
            assert [s.get("Torque_Enable") for s in em.servos] == [1] * 16
            obs = hand.get_observation()
            assert set(obs) == set(hand.observation_features)
            assert obs["index_pip_dip.pos"] == pytest.approx(
                50.0, abs=0.3
            )  # rests mid-range (512 of 256..768)

            # a hand in the glove: index fully bent and spread toward the thumb
            glove_dev.set("index_mcp_flexion", 3072)
            glove_dev.set("index_mcp_abduction", 3072)
            assert wait_for(lambda: glove.get_action()["index_ulnar_flexor.pos"] == pytest.approx(40.0))
            action = glove.get_action()
            assert action["index_radial_flexor.pos"] == pytest.approx(100.0)
            assert action["thumb_cmc.pos"] == pytest.approx(50.0)
            sent = hand.send_action(action)
            assert sent == pytest.approx(action)
            # the goal went out big-endian (protocol 1): 100 -> raw 768 = 03 00, 40 -> 256 + 0.4 * 512 = 461
            assert wait_for(lambda: any(p.code == P.INST_SYNC_WRITE for p in em.last_instructions))
            sync = [p for p in em.last_instructions if p.code == P.INST_SYNC_WRITE][-1]
            addr, length, rest = sync.params[0], sync.params[1], sync.params[2:]
            goals = {rest[i]: rest[i + 1 : i + 1 + length] for i in range(0, len(rest), length + 1)}
            assert addr == 42 and length == 2
            assert goals[5] == bytes([0x03, 0x00]) and goals[6] == (461).to_bytes(2, "big")
            assert wait_for(lambda: hand.get_observation()["index_radial_flexor.pos"] == pytest.approx(100.0))
        assert [s.get("Torque_Enable") for s in em.servos] == [0] * 16  # released on exit
        assert not glove.is_connected


def test_hand_interactive_calibration(tmp_path):
    with VirtualArm("hope_jr_hand") as arm:
        em = arm.emulator
        prompts = []

        def fake_user(prompt):  # sweeps the prompted finger's servos 100 -> 900 -> 500 raw
            prompts.append(prompt)
            finger = prompt.split("'")[0].removeprefix("Move the ")
            ids = [mid for name, (mid, _) in HOPE_JR_HAND_LAYOUT.items() if name.startswith(finger + "_")]
            for pos in (100, 900, 500):
                for motor_id in ids:
                    em.servo(motor_id).set_position(pos)
                seen = em.packets_received  # hold the pose until the calibration has read it
                assert wait_for(lambda n=seen: em.packets_received >= n + 2, timeout=5.0)
            return ""

        hand = make_robot(
            "hope_jr_hand", port=arm.port, id="left", side="left", calibration_dir=str(tmp_path)
        )
        hand.input_fn = fake_user
        with hand:  # no calibration file: connect() runs the finger-by-finger calibration
            assert len(prompts) == 5 and "thumb" in prompts[0] and "pinky" in prompts[-1]
            cal = load_calibration(hand.calibration_fpath)
            assert {(c.range_min, c.range_max, c.homing_offset) for c in cal.values()} == {(100, 900, 0)}
            assert {m for m, c in cal.items() if c.drive_mode} == set(HAND_REVERSED_MOTORS["left"])
            assert (
                em.servo(16).get("Min_Position_Limit") == 100
                and em.servo(16).get("Max_Position_Limit") == 900
            )
            # thumb_cmc is reversed on a left hand: 25 -> 75% of 100..900 = 700 raw
            hand.send_action({"thumb_cmc.pos": 25.0, "thumb_pip.pos": 25.0})
            assert wait_for(lambda: em.servo(1).get("Goal_Position") == 700)
            assert em.servo(3).get("Goal_Position") == 300


def test_glove_calibration_and_bad_lines(tmp_path):
    with virtual_device("homunculus_glove") as dev:

        def fake_user(prompt):  # move the prompted finger's joints through 1500..2500
            finger = prompt.removeprefix("Move your ").split(" ")[0]
            for raw in (1500, 2500, 2000):
                for joint in GLOVE_JOINTS:
                    if joint.startswith(finger + "_"):
                        dev.set(joint, raw)
                seen = glove.samples_received  # hold the pose until the glove has streamed it
                assert wait_for(lambda n=seen: glove.samples_received >= n + 2, timeout=5.0)
            return ""

        glove = make_teleoperator(
            "homunculus_glove", port=dev.port, id="r", calibration_dir=str(tmp_path), smoothing=1.0
        )
        glove.input_fn = fake_user
        with glove:
            cal = load_calibration(glove.calibration_fpath)
            assert {(c.range_min, c.range_max) for c in cal.values()} == {(1500, 2500)}
            assert cal["thumb_mcp"].drive_mode == 1 and cal["index_mcp_flexion"].drive_mode == 0
            joints = glove.read_joints()
            assert joints["index_mcp_flexion"] == pytest.approx(50.0)
            assert joints["thumb_mcp"] == pytest.approx(50.0)  # reversed, still the middle
            # garbled lines on the USB line are dropped, never read as positions
            dev.set("index_mcp_flexion", 2500)
            dev.corrupt_next = 5
            assert wait_for(lambda: glove.bad_lines >= 5)
            assert wait_for(lambda: glove.read_joints()["index_mcp_flexion"] == pytest.approx(100.0))
            dev.close()  # unplugged
            with pytest.raises((ConnectionError, TimeoutError), match=dev.port):
                for _ in range(100):
                    glove.get_action()
                    time.sleep(0.02)


def test_sts_and_scs_buses_share_a_process():
    """scservo_sdk keeps its byte order in a global: each bus must set its own per transaction."""
    with (
        ServoChainEmulator("feetech", {1: "sts3215"}) as arm_em,
        ServoChainEmulator("feetech", {1: "scs0009"}) as hand_em,
    ):
        arm_em.servo(1).set_position(1000)  # 03 E8: reads as 59395 with the wrong byte order
        hand_em.servo(1).set_position(300)
        arm = FeetechMotorsBus(arm_em.port, {"j": Motor(1, "sts3215")})
        hand = FeetechSCSMotorsBus(hand_em.port, {"f": Motor(1, "scs0009")})
        arm.connect()
        hand.connect()  # its PacketHandler(1) flips the SDK's global
        try:
            for _ in range(3):
                assert arm.sync_read("Present_Position", normalize=False) == {"j": 1000}
                assert hand.sync_read("Present_Position", normalize=False) == {"f": 300}
                assert arm.read("Present_Position", "j", normalize=False) == 1000
        finally:
            arm.disconnect()
            hand.disconnect()
        with pytest.raises(ValueError, match="needs a FeetechSCSMotorsBus"):
            FeetechMotorsBus(hand_em.port, {"f": Motor(1, "scs0009")})


def test_virtual_arm_command_serves_hand_and_glove(tmp_path, capsys):
    from robokit.commands.hardware import virtual_arm

    argv = ["hope_jr_hand", "homunculus_glove", "--id", "demo", "--calibration-dir", str(tmp_path)]
    assert virtual_arm([*argv, "--duration-s", "0.3", "--animate"]) == 0
    out = capsys.readouterr().out
    assert "hope_jr_hand: /dev/pts/" in out and "homunculus_glove: /dev/pts/" in out
    assert (tmp_path / "robots/hope_jr_hand/demo.json").is_file()
    assert (tmp_path / "teleoperators/homunculus_glove/demo.json").is_file()
