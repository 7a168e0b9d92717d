"""The `robokit` entry point: version, help, did-you-mean, every command documents its options."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import robokit
from robokit.cli import main
from robokit.commands import COMMANDS


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"robokit {robokit.__version__}"


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name} " in out


def test_mistyped_command_gets_a_suggestion(capsys):
    assert main(["datset"]) == 2
    assert "Did you mean 'dataset'?" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_mistyped_option_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "dataset", "--episode", "2"])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    assert "--episodes" in captured.out + captured.err


def test_import_robokit_is_light():
    code = "import sys, robokit; heavy = [m for m in ('torch', 'pyarrow', 'av', 'tyro') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- mistakes get a message, not a traceback (issue 17) ----------------------------------------------
def _fails_cleanly(capsys, argv, code=1) -> str:
    """Run `robokit argv`; it must exit `code` with one error line + the --verbose hint, no traceback."""
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("robokit ")]
    assert len(lines) == 1 and f"robokit {argv[0]}: error: " in lines[0], err
    assert "(run with --verbose for the traceback)" in err
    return lines[0]


def test_unknown_robot_type_is_a_usage_error(capsys):
    line = _fails_cleanly(capsys, ["teleoperate", "--robot.type", "so101_folower"], code=2)
    assert "unknown robot type 'so101_folower'" in line and "Did you mean 'so101_follower'?" in line


def test_unknown_virtual_arm_and_device_types(capsys):
    assert "unknown virtual arm 'so102'" in _fails_cleanly(capsys, ["virtual-arm", "so102"], code=2)
    assert "unknown device type 'so101_lead'" in _fails_cleanly(
        capsys, ["calibrate", "--type", "so101_lead"], code=2
    )


def test_missing_dataset_path(capsys, tmp_path):
    line = _fails_cleanly(capsys, ["dataset", "info", str(tmp_path / "nowhere")])
    assert str(tmp_path / "nowhere") in line


def test_verbose_after_the_command_shows_the_traceback(capsys, tmp_path):
    assert main(["dataset", "info", str(tmp_path / "nowhere"), "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "robokit dataset: error: " in err and "run with --verbose" not in err


def test_calibrating_a_joint_that_never_moved(capsys, tmp_path, monkeypatch):
    pytest.importorskip("scservo_sdk")
    import io

    from robokit.robots.virtual import VirtualArm

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n\n"))  # ENTER at the middle pose, ENTER at once after
    with VirtualArm("so101") as arm:
        line = _fails_cleanly(
            capsys,
            ["calibrate", "--type", "so101_follower", "--port", arm.port, "--calibration-dir", str(tmp_path)],
        )
    assert "did not move" in line and "'shoulder_pan'" in line and "calibrate again" in line
    assert not list(tmp_path.rglob("*.json"))  # nothing saved


def test_lekiwi_client_timeout_names_the_host_port(capsys):
    pytest.importorskip("zmq")
    import socket

    with socket.socket() as a, socket.socket() as b:  # two ports nobody listens on
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        commands, observations = a.getsockname()[1], b.getsockname()[1]
    line = _fails_cleanly(
        capsys,
        ["teleoperate", "--robot.type", "lekiwi_client", "--robot.port-commands", str(commands),
         "--robot.port-observations", str(observations), "--teleop.type", "keyboard", "--duration-s", "5"],
    )
    assert f"127.0.0.1:{observations}" in line and "lekiwi-host" in line


@pytest.mark.parametrize(
    ("robot", "module", "package"), [("stretch3", "stretch_body", "hello-robot-stretch-body"),
                                     ("reachy2", "reachy2_sdk", "reachy2-sdk")]
)
def test_missing_vendor_sdk_names_the_pip_package(capsys, monkeypatch, robot, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed (None makes the import fail)
    line = _fails_cleanly(capsys, ["teleoperate", "--robot.type", robot, "--teleop.type", "keyboard"])
    assert f"pip install {package}" in line


def test_offline_hub_id_is_one_line(tmp_path):
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "robokit.cli", "dataset", "info", "someone/no-such-dataset"],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "robokit dataset: error: " in proc.stderr and "someone/no-such-dataset" in proc.stderr


def test_help_into_a_closed_pipe_exits_quietly():
    """`robokit teleoperate --help | head`: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "robokit.cli", "teleoperate", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `head` exiting before robokit writes
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "BrokenPipeError" not in err and "Traceback" not in err and "Exception ignored" not in err, err


def test_bugs_keep_their_traceback():
    from robokit.errors import user_message

    assert user_message(TypeError("unsupported operand")) is None
    assert user_message(KeyError("observation.state")) is None  # a bare lookup failure is a bug
    assert user_message(KeyError("unknown action key 'x'")) == "unknown action key 'x'"
    assert user_message(FileNotFoundError("no such folder")) == "no such folder"
    assert user_message(ImportError("cannot import name 'x'", name="robokit.policies")) is None
    assert "'cv2'" in user_message(ModuleNotFoundError("No module named 'cv2'", name="cv2"))


@pytest.mark.parametrize("command", ["teleoperate", "record"])
def test_a_lost_servo_port_is_one_line_and_quick(capsys, tmp_path, command):
    """The follower's adapter is unplugged mid-run (the emulator closes its pty)."""
    pytest.importorskip("scservo_sdk")
    import threading
    import time

    from robokit.robots.virtual import VirtualArm

    with VirtualArm("so101", "f", tmp_path) as follower, VirtualArm("so101_leader", "l", tmp_path) as leader:
        argv = [command, "--robot.port", follower.port, "--robot.id", "f", "--robot.calibration-dir", str(tmp_path),
                "--teleop.port", leader.port, "--teleop.id", "l", "--teleop.calibration-dir", str(tmp_path)]
        if command == "record":
            argv += ["--root", str(tmp_path / "ds"), "--task", "t", "--episode-time-s", "60", "--no-keyboard",
                     "--no-use-videos"]
        else:
            argv += ["--duration-s", "60"]
        threading.Timer(1.0, follower.emulator.close).start()
        start = time.monotonic()
        line = _fails_cleanly(capsys, argv)
        assert time.monotonic() - start < 30  # not the 60 s asked for (creating the dataset takes seconds)
    assert "the port is gone" in line and follower.port in line


def test_missing_pusht_hint_is_a_command_that_installs_it(capsys, monkeypatch, tmp_path):
    """gym-pusht is not in the sim extra (it goes in with --no-deps): the hint must say so."""
    monkeypatch.setitem(sys.modules, "gym_pusht", None)  # as if not installed
    line = _fails_cleanly(capsys, ["eval", "--policy", "random", "--env", "pusht", "--episodes", "1",
                                   "--out", str(tmp_path / "eval")])
    assert "pip install --no-deps gym-pusht==0.1.8" in line and "pip install 'robokit[sim]'" not in line


def test_every_pip_hint_in_robokit_names_an_installable_target():
    """`pip install 'robokit[...]'` does not work (robokit is installed from its checkout): no hint may say it."""
    from pathlib import Path

    root = Path(robokit.__file__).parent
    offenders = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
                 for n, text in enumerate(path.read_text().splitlines(), 1)
                 if "pip install 'robokit[" in text or 'pip install "robokit[' in text]
    assert not offenders, offenders


def _tiny_dataset(root, fps: int = 30):
    """A two-feature dataset of one 3-frame episode, no video."""
    import numpy as np

    from robokit.data import RobotDataset

    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": None},
                "action": {"dtype": "float32", "shape": [2], "names": None}}
    ds = RobotDataset.create(root, fps, features, robot_type="arm", use_videos=False)
    for _ in range(3):
        ds.add_frame({"observation.state": np.zeros(2, np.float32), "action": np.zeros(2, np.float32), "task": "t"})
    ds.save_episode()
    ds.finalize()
    return root


def test_merging_datasets_of_different_fps(capsys, tmp_path):
    a, b = _tiny_dataset(tmp_path / "a", fps=30), _tiny_dataset(tmp_path / "b", fps=10)
    line = _fails_cleanly(capsys, ["dataset", "merge", str(a), str(b), "--out", str(tmp_path / "merged")])
    assert "30 fps" in line and "10 fps" in line


def test_mistyped_policy_type_gets_a_suggestion_without_traceback(capsys, tmp_path):
    root = _tiny_dataset(tmp_path / "ds")
    line = _fails_cleanly(capsys, ["train", "--dataset", str(root), "--policy", "difusion", "--steps", "1",
                                   "--output-dir", str(tmp_path / "out")])
    assert "'difusion'" in line and "Did you mean 'diffusion'?" in line


def test_setup_motors_with_the_whole_arm_connected(capsys, monkeypatch):
    """setup-motors wants one motor on the bus at a time; a whole chain is a message, not a traceback."""
    pytest.importorskip("scservo_sdk")
    import io

    from robokit.robots.virtual import VirtualArm

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    with VirtualArm("so101") as arm:
        line = _fails_cleanly(capsys, ["setup-motors", "--type", "so101_follower", "--port", arm.port])
    assert "expected exactly one motor" in line and "connect only the gripper motor" in line


@pytest.mark.parametrize(("command", "option", "table"), [("teleoperate", "--robot.type", "ROBOTS"),
                                                          ("teleoperate", "--teleop.type", "TELEOPERATORS"),
                                                          ("virtual-arm", "--arms", "VIRTUAL_ARMS")])
def test_help_lists_every_registered_type(capsys, monkeypatch, command, option, table):
    """The lists come from the registries (stretch3 and reachy2 were missing from a hand-written one)."""
    from robokit.robots import registry

    monkeypatch.setenv("COLUMNS", "400")  # no names broken across lines
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    after = text[text.index(option + " "):]
    listed = {name.strip() for name in after.split(":", 1)[1].split(".")[0].split(",")}
    assert set(getattr(registry, table)) <= listed


@pytest.mark.parametrize(("argv", "code", "expected"), [
    (["train", "--recipe", "act_aloha_transfer_cub"], 2, "Did you mean 'act_aloha_transfer_cube'"),
    (["train", "--steps", "1"], 2, "--dataset is required"),
    (["demos", "metaworld/no-such-task"], 2, "no-such-task"),
    (["eval", "--policy", "random", "--env", "pusht", "--shuffle-instructions"], 2, "distinct instruction"),
    (["eval", "--policy", "{tmp}/nowhere", "--env", "pusht", "--out", "{tmp}/eval"], 1, "nowhere"),
    (["push-policy", "{tmp}/nowhere", "me/act_test"], 1, "nowhere"),
    (["record", "--root", "{tmp}/ds", "--task", "t", "--policy-path", "{tmp}/nowhere"], 1, "nowhere"),
    (["serve", "--port", "0", "--tls-cert", "{tmp}/cert.pem"], 2, "--tls-key"),
])
def test_every_command_reports_mistakes_in_the_documented_form(capsys, tmp_path, argv, code, expected):
    """README: a mistake gets `robokit <command>: error: ...` and the --verbose hint, from every command
    (train, demos, eval, serve, run-policy, record and push-policy printed their own formats, without "error:")."""
    line = _fails_cleanly(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv], code=code)
    assert expected in line


def test_other_libraries_info_logs_stay_quiet_without_verbose():
    """`robokit demos` printed 'INFO OpenGL.acceleratesupport: No OpenGL_accelerate module loaded' and absl's
    MuJoCo lines: only robokit's own INFO lines belong in a command's output, the rest needs --verbose."""
    code = ("import logging, sys; from robokit.cli import setup_logging; setup_logging('-v' in sys.argv); "
            "logging.getLogger('absl').info('absl info'); logging.getLogger('absl').warning('absl warning'); "
            "logging.getLogger('robokit.envs').info('robokit info'); logging.getLogger('robokit.envs').debug('robokit debug')")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stderr
    assert "absl warning" in quiet and "robokit info" in quiet
    assert "absl info" not in quiet and "robokit debug" not in quiet
    verbose = subprocess.run([sys.executable, "-c", code, "-v"], capture_output=True, text=True, check=True, timeout=60).stderr
    assert "absl info" in verbose and "robokit debug" in verbose


def test_glove_smoothing_is_a_command_line_option():
    """docs/hardware.md names --teleop.smoothing; the command line used to reject it."""
    pytest.importorskip("serial")
    from robokit.cli import parse
    from robokit.commands.hardware import TeleoperateConfig

    cfg = parse(TeleoperateConfig, ["--teleop.type", "homunculus_glove", "--teleop.port", "/dev/null", "--teleop.smoothing", "0.5"], prog="t")
    assert cfg.teleop.build().config.smoothing == 0.5
    with pytest.raises(ValueError, match=r"smoothing=1.5, expected in \(0, 1\]"):
        dataclasses.replace(cfg.teleop, smoothing=1.5).build()


def test_top_level_help_names_every_policy_type():
    """`robokit --help` said "Train a policy (ACT, Diffusion Policy)" after SmolVLA, π0 and π0.5 were added."""
    from robokit.policies.config import BUILTIN_POLICIES  # not available_policies(): other tests register their own

    summary = COMMANDS["train"][1]
    assert all(name in summary.replace(",", " ").replace("(", " ").replace(")", " ").split()
               for name in BUILTIN_POLICIES), summary
