"""SIGTERM is the normal stop under systemd and Kubernetes: `robokit serve` and `robokit run-policy` exit 0
after a clean shutdown whenever it comes (as soon as the process can catch it, during start-up, when ready)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import free_port, make_features, save_tiny_act

ROBOKIT = [sys.executable, "-m", "robokit.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/<pid>/status (Linux)")


def catches_sigterm(pid: int) -> bool:
    """The process installed a SIGTERM handler (bit 15 of SigCgt): the earliest it can handle one.
    Before that the kernel's default action applies, which no program can change."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except FileNotFoundError:
        pass
    return False


def start(args):
    process = subprocess.Popen([*ROBOKIT, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not catches_sigterm(process.pid):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the process never installed a SIGTERM handler"
        time.sleep(0.002)
    return process


def terminate(process, after_s: float = 0.0, ready_line: str | None = None):
    if ready_line is not None:
        line = process.stdout.readline()
        assert ready_line in line, line
    time.sleep(after_s)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.mark.parametrize("after_s", [0.0, 0.02, 0.1, 0.3])
def test_serve_exits_0_on_sigterm_during_start_up(after_s):
    process = start(["serve", "--port", str(free_port())])
    code, out, err = terminate(process, after_s)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err


def test_serve_exits_0_on_sigterm_when_ready_and_on_a_second_sigterm():
    process = start(["serve", "--port", str(free_port())])
    line = process.stdout.readline()
    assert "policy server listening on" in line, line
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)  # an impatient process manager
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def pusht_policy(tmp_path_factory):
    pytest.importorskip("gym_pusht")
    feats = make_features(state_dim=2, env_dim=0, action_dim=2, cams={"top": (96, 96)})
    return save_tiny_act(tmp_path_factory.mktemp("pusht") / "act", feats)


@pytest.mark.parametrize("after_s", [0.0, 0.2, 1.0])
def test_run_policy_exits_0_on_sigterm_during_start_up(pusht_policy, after_s):
    process = start(["run-policy", "--env", "pusht", "--local", "--policy", str(pusht_policy), "--duration-s", "60"])
    code, out, err = terminate(process, after_s)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err


def test_run_policy_exits_0_on_sigterm_while_running(pusht_policy, tmp_path):
    stats = tmp_path / "stats.json"
    process = start(["run-policy", "--env", "pusht", "--local", "--policy", str(pusht_policy), "--duration-s", "60",
                     "--fps", "20", "--stats-json", str(stats)])
    for line in process.stderr:  # the log line of the running loop
        if "control loop running at 20 fps" in line:
            break
    time.sleep(0.5)
    code, out, err = terminate(process)
    assert code == 0, err[-2000:]
    assert "actions" in out and stats.exists()


def test_serve_exits_0_on_sigterm_with_a_client_streaming(act_path, features):
    from robokit.serving.transport import RemoteBackend

    port = free_port()
    process = start(["serve", "--port", str(port)])
    assert "policy server listening on" in process.stdout.readline()
    backend = RemoteBackend(f"127.0.0.1:{port}", str(act_path), features, reconnect_timeout_s=0.5)
    try:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        backend.close()
    assert process.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "stopping the policy server" in err
