"""LeKiwi over the network: a host on the robot, a client (a Robot) on the laptop, over ZeroMQ.

Messages are JSON (never pickle): commands `{"arm_shoulder_pan.pos": 1.0, "x.vel": 0.1, ...}`,
observations the same floats plus camera frames as base64 JPEG. The host stops the base when no
command arrived for `watchdog_s` (a dropped Wi-Fi link must not leave the robot driving).

    on the robot:  robokit lekiwi-host --robot.port /dev/ttyACM0 --robot.id kiwi
    on the laptop: LeKiwiClient(LeKiwiClientConfig(remote_ip="192.168.1.42"))
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robokit.errors import install_hint
from robokit.robots.lekiwi import ARM_LAYOUT, BASE_FEATURES, LeKiwi
from robokit.robots.robot import DeviceNotConnectedError, Robot, RobotConfig

logger = logging.getLogger(__name__)


def _zmq():
    try:
        import zmq
    except ImportError as exc:
        raise ImportError(f"LeKiwi's network link needs pyzmq: {install_hint('hardware')}") from exc
    return zmq


def encode_observation(obs: dict[str, Any], jpeg_quality: int = 90) -> bytes:
    import cv2

    out: dict[str, Any] = {}
    for key, value in obs.items():
        if isinstance(value, np.ndarray) and value.ndim == 3:
            ok, buf = cv2.imencode(
                ".jpg", cv2.cvtColor(value, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
            )
            if not ok:
                raise RuntimeError(f"could not JPEG-encode camera {key!r}")
            out[key] = {"jpeg": base64.b64encode(buf.tobytes()).decode("ascii")}
        else:
            out[key] = float(value)
    return json.dumps(out).encode()


def decode_observation(message: bytes) -> dict[str, Any]:
    import cv2

    raw = json.loads(message)
    if not isinstance(raw, dict):
        raise ValueError(f"LeKiwi observation: expected a JSON object, got {type(raw).__name__}")
    obs: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and "jpeg" in value:
            bgr = cv2.imdecode(np.frombuffer(base64.b64decode(value["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"LeKiwi observation: camera {key!r} is not a valid JPEG")
            obs[key] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        elif isinstance(value, (int, float)):
            obs[key] = float(value)
        else:
            raise ValueError(
                f"LeKiwi observation: {key!r} has {type(value).__name__}, expected a number or a JPEG"
            )
    return obs


class LeKiwiHost:
    """Serve a connected LeKiwi: apply the latest command, publish observations at `fps`."""

    def __init__(
        self,
        robot: LeKiwi,
        port_commands: int = 5555,
        port_observations: int = 5556,
        fps: float = 30,
        watchdog_s: float = 0.5,
        bind: str = "0.0.0.0",
    ):
        zmq = _zmq()
        self.robot, self.fps, self.watchdog_s = robot, fps, watchdog_s
        self.context = zmq.Context()
        self.commands = self.context.socket(zmq.PULL)
        self.commands.setsockopt(zmq.CONFLATE, 1)  # only the newest command matters
        self.commands.bind(f"tcp://{bind}:{port_commands}")
        self.observations = self.context.socket(zmq.PUSH)
        self.observations.setsockopt(zmq.CONFLATE, 1)
        self.observations.bind(f"tcp://{bind}:{port_observations}")
        self.commands_applied = 0
        self.watchdog_stops = 0
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    def serve(self, duration_s: float | None = None, should_stop=None) -> None:
        """Serve until `duration_s`, `should_stop()` or `close()` (from any thread)."""
        self._idle.clear()
        try:
            self._serve(duration_s, should_stop)
        finally:
            self._idle.set()

    def _serve(self, duration_s: float | None, should_stop) -> None:
        zmq = _zmq()
        start = last_command = time.monotonic()
        base_moving = False
        while duration_s is None or time.monotonic() - start < duration_s:
            if self._stop.is_set() or (should_stop is not None and should_stop()):
                break
            tick = time.monotonic()
            try:
                message = self.commands.recv(zmq.NOBLOCK)
            except zmq.Again:
                message = None
            if message is not None:
                try:
                    action = json.loads(message)
                    if not isinstance(action, dict):
                        raise ValueError("expected a JSON object")
                    self.robot.send_action({k: float(v) for k, v in action.items()})
                    self.commands_applied += 1
                    last_command = time.monotonic()
                    base_moving = any(abs(float(action.get(k, 0.0))) > 0 for k in BASE_FEATURES)
                except (ValueError, KeyError, TypeError) as exc:
                    logger.warning("LeKiwi host: ignored a bad command (%s)", exc)
            if base_moving and time.monotonic() - last_command > self.watchdog_s:
                logger.warning("LeKiwi host: no command for %.1f s, stopping the base", self.watchdog_s)
                self.robot.stop_base()
                self.watchdog_stops += 1
                base_moving = False
            try:  # no client connected: drop the observation rather than block the command loop
                self.observations.send(encode_observation(self.robot.get_observation()), zmq.NOBLOCK)
            except zmq.Again:
                pass
            time.sleep(max(0.0, 1.0 / self.fps - (time.monotonic() - tick)))

    def close(self) -> None:
        """Stop serving (waiting for the loop to let go of its sockets), then close them."""
        self._stop.set()
        self._idle.wait()
        self.commands.close(linger=0)
        self.observations.close(linger=0)
        self.context.term()


@dataclass
class LeKiwiClientConfig(RobotConfig):
    remote_ip: str = "127.0.0.1"
    """Address of the robot running the LeKiwi host."""
    port_commands: int = 5555
    """Host port receiving commands."""
    port_observations: int = 5556
    """Host port sending observations."""
    cameras: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Camera names and frame shapes (height, width, 3) the host sends, e.g. {"front": (480, 640, 3)}."""
    timeout_s: float = 2.0
    """How long to wait for an observation before a clear error."""

    def __post_init__(self):
        # camera configs (as the CLI builds them) carry the frame size the host sends
        self.cameras = {
            name: (c.height, c.width, 3) if hasattr(c, "height") else tuple(c)
            for name, c in self.cameras.items()
        }


class LeKiwiClient(Robot):
    name = "lekiwi_client"
    config_class = LeKiwiClientConfig

    def __init__(self, config: LeKiwiClientConfig):
        super().__init__(config)
        self.config: LeKiwiClientConfig = config
        self.context = None
        self._last_obs: dict[str, Any] | None = None

    @property
    def robot_type(self) -> str:
        return "lekiwi"

    @property
    def action_features(self) -> dict[str, Any]:
        return {**{f"{m}.pos": float for m in ARM_LAYOUT}, **{k: float for k in BASE_FEATURES}}

    @property
    def observation_features(self) -> dict[str, Any]:
        return {**self.action_features, **{name: tuple(shape) for name, shape in self.config.cameras.items()}}

    @property
    def is_connected(self) -> bool:
        return self.context is not None

    def connect(self, calibrate: bool = True) -> None:
        zmq = _zmq()
        self.context = zmq.Context()
        self.commands = self.context.socket(zmq.PUSH)
        self.commands.setsockopt(zmq.CONFLATE, 1)
        self.commands.connect(f"tcp://{self.config.remote_ip}:{self.config.port_commands}")
        self.observations = self.context.socket(zmq.PULL)
        self.observations.setsockopt(zmq.CONFLATE, 1)
        self.observations.connect(f"tcp://{self.config.remote_ip}:{self.config.port_observations}")

    def get_observation(self) -> dict[str, Any]:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        zmq = _zmq()
        if self.observations.poll(int(self.config.timeout_s * 1000), zmq.POLLIN) == 0:
            raise TimeoutError(
                f"{self!r}: no observation from {self.config.remote_ip}:{self.config.port_observations} "
                f"within {self.config.timeout_s} s; is `robokit lekiwi-host` running on the robot, with "
                f"--port-observations {self.config.port_observations} and --port-commands {self.config.port_commands}?"
            )
        obs = decode_observation(self.observations.recv())
        missing = set(self.observation_features) - set(obs)
        if missing:
            raise KeyError(
                f"{self!r}: the host's observation lacks {sorted(missing)}; check the client's camera config"
            )
        self._last_obs = obs
        return {k: obs[k] for k in self.observation_features}

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        unknown = set(action) - set(self.action_features)
        if unknown:
            raise KeyError(f"{self!r}.send_action: unknown action keys {sorted(unknown)}")
        message = {k: float(v) for k, v in action.items()}
        self.commands.send(json.dumps(message).encode())
        return message  # the host clamps on the robot; this is what was requested

    def disconnect(self) -> None:
        if self.context is not None:
            try:  # a last command stops the base
                self.commands.send(json.dumps({k: 0.0 for k in BASE_FEATURES}).encode(), _zmq().NOBLOCK)
            except Exception:
                pass
            self.commands.close(linger=100)
            self.observations.close(linger=0)
            self.context.term()
            self.context = None
