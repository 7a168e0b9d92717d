"""Teleoperate, record and replay on virtual SO-101 arms (real pty traffic) into a real dataset."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")

from robokit.cameras import CameraConfig  # noqa: E402
from robokit.control.record import RecordEvents, episode_actions, record, replay  # noqa: E402
from robokit.control.teleoperate import teleoperate_loop  # noqa: E402
from robokit.control.timing import LoopTimer  # noqa: E402
from robokit.motors import PortLostError  # noqa: E402
from robokit.robots.registry import make_robot, make_teleoperator  # noqa: E402
from robokit.robots.virtual import VirtualArm  # noqa: E402

ONE_SHORT_EPISODE = dict(fps=30, num_episodes=1, episode_time_s=0.2, reset_time_s=0, keyboard=False, video_codec="h264")
"""record() options of the short tests: one 0.2 s episode (6 frames), no reset, h264."""


@pytest.fixture
def arms(tmp_path):
    cal = tmp_path / "cal"
    with (
        VirtualArm("so101", "f", cal) as follower,
        VirtualArm("so101_leader", "l", cal, animate=True) as leader,
    ):
        robot = make_robot(
            "so101_follower",
            port=follower.port,
            id="f",
            calibration_dir=str(cal),
            cameras={"front": CameraConfig("synthetic", width=64, height=48, fps=30)},
        )
        teleop = make_teleoperator("so101_leader", port=leader.port, id="l", calibration_dir=str(cal))
        robot.connect()
        teleop.connect()
        yield robot, teleop, follower, leader
        for device in (robot, teleop):
            if device.is_connected:
                device.disconnect()


class Pressing:
    """A teleoperator wrapper that presses a key after `after` actions (a person at the keyboard)."""

    def __init__(self, teleop, events, key, after):
        self.teleop, self.events, self.key, self.after, self.calls = teleop, events, key, after, 0

    def get_action(self):
        self.calls += 1
        if self.calls == self.after:
            self.events.press(self.key)
        return self.teleop.get_action()


def test_teleoperate_reports_timing(arms):
    robot, teleop, follower, _ = arms
    timer = teleoperate_loop(robot, teleop, fps=30, duration_s=0.4)
    s = timer.summary()
    # at most 30 fps * 0.4 s (+1); fewer on a loaded host, and then some ticks are counted late
    assert 1 <= s["ticks"] <= 13 and set(s["stages_ms"]) == {"read", "teleop", "send"}
    assert s["ticks"] >= 11 or s["late_ticks"] > 0
    assert "fps" in timer.report()


def test_record_rerecord_and_replay(arms, tmp_path):
    from robokit.cli import main as cli_main
    from robokit.data import RobotDataset

    robot, teleop, follower, leader = arms
    events = RecordEvents()
    driver = Pressing(teleop, events, "r", after=5)  # the first attempt is thrown away after 5 frames
    root = tmp_path / "ds"
    ds, timer = record(
        robot,
        driver,
        root,
        "wave the arm",
        fps=30,
        num_episodes=2,
        episode_time_s=0.3,
        reset_time_s=0.1,
        events=events,
        keyboard=False,
        video_codec="h264",
    )
    ds = RobotDataset(root)
    assert ds.meta.total_episodes == 2 and len(ds) == 18 and ds.meta.robot_type == "so101_follower"
    item = ds[3]
    assert item["observation.images.front"].shape == (3, 48, 64) and item["task"] == "wave the arm"
    assert ds.features["observation.state"]["names"][0] == "shoulder_pan.pos"
    assert cli_main(["dataset", "check", str(root)]) == 0

    actions, fps = episode_actions(root, 1)
    assert fps == 30 and len(actions) == 9
    sent, _ = replay(robot, root, episode=1)
    np.testing.assert_allclose(
        [a["shoulder_pan.pos"] for a in sent], [a["shoulder_pan.pos"] for a in actions], atol=1e-4
    )
    # the last replayed goal is in the follower's goal register (raw steps, range 1024..3072)
    expected_raw = round((actions[-1]["shoulder_pan.pos"] + 100) / 200 * 2048 + 1024)
    deadline = time.monotonic() + 2
    while follower.emulator.servo(1).get("Goal_Position") != expected_raw and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abs(follower.emulator.servo(1).get("Goal_Position") - expected_raw) <= 1


def test_unplugged_bus_keeps_saved_episodes(arms, tmp_path):
    from robokit.data import RobotDataset

    robot, teleop, follower, _ = arms

    class Unplug(Pressing):
        def get_action(self):
            self.calls += 1
            if self.calls == 15:  # during the second episode
                follower.emulator.close()
            return self.teleop.get_action()

    root = tmp_path / "ds"
    with pytest.raises(PortLostError, match="unplugged"):
        record(
            robot,
            Unplug(teleop, None, None, 0),
            root,
            "t",
            fps=30,
            num_episodes=3,
            episode_time_s=0.3,
            reset_time_s=0,
            keyboard=False,
            video_codec="h264",
        )
    ds = RobotDataset(root)
    assert ds.meta.total_episodes == 1 and len(ds) == 9


def test_loop_timer_counts_late_ticks():
    timer = LoopTimer(fps=100)
    for k in range(10):
        with timer.stage("work"):
            time.sleep(0.03 if k == 3 else 0.0)
        timer.wait()
    assert timer.late_ticks >= 1 and timer.ticks == 10


def test_virtual_arm_command_prints_a_usable_port(tmp_path):
    cal = tmp_path / "cal"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "robokit.cli",
            "virtual-arm",
            "so101",
            "--id",
            "v",
            "--calibration-dir",
            str(cal),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("so101: /dev/pts/"), line
        port = line.split()[1]
        with make_robot("so101_follower", port=port, id="v", calibration_dir=str(cal)) as robot:
            sent = robot.send_action({"shoulder_pan.pos": 25.0})
            assert sent == {"shoulder_pan.pos": 25.0}
            deadline = time.monotonic() + 3
            while (
                abs(robot.get_observation()["shoulder_pan.pos"] - 25.0) > 0.5 and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            assert robot.get_observation()["shoulder_pan.pos"] == pytest.approx(25.0, abs=0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_record_from_sim_robot(tmp_path):
    """The same record loop on the simulation issue's SimRobot (no teleop: the robot holds its pose)."""
    pytest.importorskip("pymunk")
    from robokit.commands.hardware import RobotArgs
    from robokit.data import RobotDataset

    robot = RobotArgs(type="sim", env="pusht").build()
    with robot:
        record(
            robot,
            None,
            tmp_path / "sim",
            "push the T",
            fps=10,
            num_episodes=1,
            episode_time_s=0.5,
            reset_time_s=0,
            keyboard=False,
            video_codec="h264",
        )
    ds = RobotDataset(tmp_path / "sim")
    assert len(ds) == 5 and ds.meta.robot_type.startswith("sim_")


def test_record_with_a_trained_policy(arms, tmp_path):
    """A policy built from a recording drives the robot that recorded it (evaluation episodes)."""
    torch = pytest.importorskip("torch")
    from robokit.control.policy_actor import PolicyActor
    from robokit.data import RobotDataset
    from robokit.policies import Policy, make_config

    robot, teleop, follower, _ = arms
    record(robot, teleop, tmp_path / "demo", "wave", **ONE_SHORT_EPISODE)
    ds = RobotDataset(tmp_path / "demo")
    config = make_config(
        "act",
        chunk_size=4,
        n_action_steps=4,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        use_vae=False,
    )
    torch.manual_seed(0)
    Policy.build(config, ds.features, ds.meta.stats).save_pretrained(tmp_path / "policy")
    actor = PolicyActor.from_pretrained(str(tmp_path / "policy"), robot, task="wave")
    _, timer = record(robot, None, tmp_path / "eval", "wave", policy=actor, **ONE_SHORT_EPISODE)
    assert "policy" in timer.summary()["stages_ms"]
    evaluated = RobotDataset(tmp_path / "eval")
    assert len(evaluated) == 6
    actions = torch.stack([evaluated[i]["action"] for i in range(len(evaluated))])
    assert torch.isfinite(actions).all()


def test_record_resume_appends_episodes(arms, tmp_path):
    from robokit.data import RobotDataset

    robot, teleop, _, _ = arms
    kwargs = ONE_SHORT_EPISODE
    record(robot, teleop, tmp_path / "ds", "t", **kwargs)
    record(robot, teleop, tmp_path / "ds", "t", resume=True, **kwargs)
    ds = RobotDataset(tmp_path / "ds")
    assert ds.meta.total_episodes == 2 and len(ds) == 12
    other = make_robot("koch_follower", port="/dev/null", id="x")
    with pytest.raises(ValueError, match=r"names for \['observation.images.front'\] and another robot type"):
        record(other, None, tmp_path / "ds", "t", resume=True, **kwargs)
