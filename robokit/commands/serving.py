"""`robokit serve` (the policy server) and `robokit run-policy` (the robot client).

    robokit serve --host 127.0.0.1 --port 8080
    robokit run-policy --robot.type so101_follower --robot.port /dev/ttyACM0 --server 127.0.0.1:8080 \\
        --policy outputs/train --fps 30
    robokit run-policy --virtual --policy PATH --local          # a virtual arm, the policy in-process
    robokit run-policy --env aloha_transfer_cube --policy PATH --server 127.0.0.1:8080
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from robokit.cli import parse
from robokit.commands.hardware import RobotArgs
from robokit.errors import RobokitError, UsageError
from robokit.serving.config import ServeConfig

logger = logging.getLogger(__name__)


class StopRequest:
    """SIGTERM (and Ctrl-C) as a request to stop: the handler only sets a flag, so a signal that comes
    while the server starts up is seen by the main loop, never escapes as KeyboardInterrupt (exit 130).
    Installed first thing in `serve`, before the heavy imports."""

    def __init__(self):
        self.signal: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return self.signal is not None


def serve(argv: list[str]) -> int:
    stop = StopRequest()
    cfg = parse(ServeConfig, argv, prog="robokit serve",
                description="Serve policies over gRPC: clients send observations, the server streams action chunks.")
    if stop:
        return 0
    from robokit.serving.server import PolicyServer

    try:
        server = PolicyServer(cfg).start()
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    try:
        if not stop:
            print(f"policy server listening on {cfg.host}:{server.port}", flush=True)
        while not stop:
            server.wait(timeout=0.2)
        logger.info("%s: stopping the policy server", signal.Signals(stop.signal).name)
    finally:
        server.stop()
    return 0


@dataclass
class RunPolicyConfig:
    """Options of `robokit run-policy`."""

    policy: str
    """A training output folder (its last checkpoint), a checkpoint or save_pretrained folder, or a hub repo id."""
    server: str = "127.0.0.1:8080"
    """Policy server HOST:PORT (ignored with --local)."""
    local: bool = False
    """Run the policy in this process instead of on a server (same queue logic)."""
    robot: RobotArgs = field(default_factory=RobotArgs)
    virtual: bool = False
    """Start a virtual arm of --robot.type (an emulated servo bus) and drive it: no hardware needed."""
    env: str | None = None
    """Drive a simulated env through SimRobot instead of a robot, e.g. pusht or aloha_transfer_cube (it also
    sends observation.environment_state, so a policy trained on `robokit demos` data runs on it)."""
    env_cameras: tuple[str, ...] | None = None
    """With --env: cameras to render (default: the env's; `--env-cameras` alone: none, for a state-only policy)."""
    env_image_size: tuple[int, int] | None = None
    """With --env: (height, width) of camera images, as recorded with `robokit demos --image-size` (default: the env's)."""
    fps: float = 30.0
    """Control rate: one action per tick."""
    mode: Literal["async", "sync"] = "async"
    """async: fetch the next chunk while executing; sync: wait for each chunk."""
    chunk_size_threshold: float = 0.5
    """Send an observation when queue_length / chunk_size <= this."""
    aggregate: str = "latest_only"
    """latest_only, average, weighted_average, conservative or temporal_ensemble."""
    aggregate_alpha: float = 0.7
    """weighted_average: the weight of the newest prediction."""
    ensemble_m: float = 0.01
    """temporal_ensemble: prediction i (0 = oldest) weighs exp(-m * i)."""
    actions_per_chunk: int = 0
    """Actions per chunk to use (0: the policy's whole chunk)."""
    policy_type: str = ""
    """Expected policy type (checked by the server), e.g. act."""
    device: str = ""
    """Device the policy runs on ("" = the server's default, cpu locally)."""
    jpeg_quality: int | None = None
    """JPEG-compress camera frames at this quality (1-100); None sends raw pixels."""
    token: str | None = None
    """Shared token of the server (--token of robokit serve)."""
    tls_ca: str | None = None
    """PEM certificate to verify a TLS server with (its --tls-cert, or the CA that signed it)."""
    connect_timeout_s: float = 10.0
    """How long to wait for the server at start-up."""
    reconnect_timeout_s: float = 10.0
    """How long to try to reconnect when the server goes away before giving up."""
    max_steps: int | None = None
    """Stop after this many actions."""
    duration_s: float | None = 30.0
    """Stop after this many seconds (None: until max_steps, an env episode's end, or Ctrl-C)."""
    task: str = ""
    """Language instruction sent with each observation."""
    stats_json: Path | None = None
    """Write the run statistics here."""
    plot: Path | None = None
    """Write a PNG of the queue length over time here (needs matplotlib)."""


@dataclass
class _EnvRobotIO:
    """SimRobot episodes end on success or the time limit: the client stops there."""

    io: object

    def __getattr__(self, name):
        return getattr(self.io, name)

    @property
    def done(self) -> bool:
        info = self.io.robot.last_info
        return bool(info.get("is_success") or info.get("terminated") or info.get("truncated"))


def run_policy_config(cfg: RunPolicyConfig):
    """Run a policy on a robot, a virtual arm or a sim env as `cfg` says; returns the RunStats."""
    from robokit.serving.backends import LocalBackend
    from robokit.serving.client import ClientConfig, RobotClient, RobotIO

    client_cfg = ClientConfig(fps=cfg.fps, mode=cfg.mode, chunk_size_threshold=cfg.chunk_size_threshold,
                              aggregate=cfg.aggregate, aggregate_alpha=cfg.aggregate_alpha, ensemble_m=cfg.ensemble_m,
                              task=cfg.task)
    with ExitStack() as stack:
        robot = _build_robot(cfg, stack)
        robot.connect()
        stack.callback(robot.disconnect)
        io = RobotIO(robot)
        if cfg.env:
            io = _EnvRobotIO(io)
        if cfg.local:
            from robokit.policies import Policy

            policy = Policy.from_pretrained(cfg.policy, device=cfg.device or "cpu")
            backend = LocalBackend(policy, io.features, cfg.actions_per_chunk)
        else:
            from robokit.serving.transport import RemoteBackend

            backend = RemoteBackend(cfg.server, cfg.policy, io.features, cfg.actions_per_chunk,
                                    policy_type=cfg.policy_type, device=cfg.device, token=cfg.token,
                                    tls_ca=cfg.tls_ca, jpeg_quality=cfg.jpeg_quality,
                                    connect_timeout_s=cfg.connect_timeout_s, reconnect_timeout_s=cfg.reconnect_timeout_s)
        stack.callback(backend.close)
        client = RobotClient(io, backend, client_cfg)
        try:
            stats = client.run(max_steps=cfg.max_steps, duration_s=cfg.duration_s,
                               until=(lambda c: False) if cfg.max_steps is None and cfg.duration_s is None else None)
        except KeyboardInterrupt:
            stats = client.stats  # run() filled in elapsed_s on the way out
    if cfg.stats_json:
        cfg.stats_json.parent.mkdir(parents=True, exist_ok=True)
        cfg.stats_json.write_text(json.dumps(stats.summary(), indent=2) + "\n")
    if cfg.plot:
        stats.plot_queue(cfg.plot)
    return stats


def _build_robot(cfg: RunPolicyConfig, stack: ExitStack):
    if cfg.env:
        from robokit.envs.sim_robot import SimRobot, SimRobotConfig

        return SimRobot(SimRobotConfig(env=cfg.env, cameras=cfg.env_cameras, image_size=cfg.env_image_size))
    if cfg.virtual:
        from robokit.robots.registry import VIRTUAL_ARMS
        from robokit.robots.virtual import VirtualArm

        names = [name for name, device in VIRTUAL_ARMS.items() if device == cfg.robot.type]
        if not names:
            raise ValueError(f"--virtual: no virtual arm emulates {cfg.robot.type!r}; "
                             f"known: {sorted(set(VIRTUAL_ARMS.values()))}")
        calibration_dir = cfg.robot.calibration_dir or stack.enter_context(tempfile.TemporaryDirectory())
        arm = stack.enter_context(VirtualArm(names[0], cfg.robot.id, calibration_dir))
        cfg.robot.port, cfg.robot.calibration_dir = arm.port, calibration_dir
        logger.info("virtual %s arm on %s", names[0], arm.port)
    elif not cfg.robot.port:
        raise ValueError("run-policy: --robot.port is empty; give the servo bus port, or --virtual, or --env NAME")
    return cfg.robot.build()


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C (the robot is disconnected on the way out), then exits 0."""


def _terminate_once() -> None:
    """SIGTERM raises Terminated once; a second SIGTERM during the unwinding is ignored, so that
    the clean-up (releasing the robot) is not itself interrupted."""

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    signal.signal(signal.SIGTERM, handler)


def run_policy(argv: list[str]) -> int:
    _terminate_once()  # first: a SIGTERM during start-up must unwind like one during the run
    try:
        cfg = parse(RunPolicyConfig, argv, prog="robokit run-policy",
                    description="Run a policy on a robot at a fixed rate, with inference on a policy server or in-process.")
        from robokit.serving.transport import ServerError

        try:
            stats = run_policy_config(cfg)
        except ServerError as err:  # the server refused: a message for the user, not a bug
            raise RobokitError(str(err)) from err
        print(stats.report())
    except Terminated:  # outside the control loop (run_policy_config handles one during the run)
        print("robokit run-policy: stopped by SIGTERM", file=sys.stderr)
    return 0
