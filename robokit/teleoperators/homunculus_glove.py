"""The Homunculus glove: the Hope-JR hand's leader.

A glove with one sensor per finger joint (16 in all) and a microcontroller that streams their raw
readings over USB serial, one line per sample: 16 integers separated by spaces, `\\n`-terminated,
in the order of `GLOVE_JOINTS`. A background thread reads the stream and keeps the latest complete
sample; a line that does not hold 16 integers is dropped and counted, never used.

`get_action()` turns the glove's joints into the hand's tendon targets (`glove_to_hand`): thumb
joints map one to one; a finger's MCP flexion and abduction mix into its radial and ulnar flexors
(both pull to flex, one more than the other to tilt the finger), and its DIP drives the PIP+DIP servo.

    glove = make_teleoperator("homunculus_glove", port="/dev/ttyACM1", id="right", side="right")
    hand = make_robot("hope_jr_hand", port="/dev/ttyACM0", id="right", side="right")

`robokit virtual-arm homunculus_glove` serves a virtual glove (`robokit.robots.virtual_glove`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robokit.motors.calibration import (
    MotorCalibration,
    MotorNormMode,
    load_calibration,
    normalize,
    save_calibration,
)
from robokit.robots.robot import DeviceAlreadyConnectedError, DeviceNotConnectedError, NotCalibratedError
from robokit.teleoperators.teleoperator import Teleoperator, TeleoperatorConfig

logger = logging.getLogger(__name__)

_FLEX, _ABDUCT = MotorNormMode.RANGE_0_100, MotorNormMode.RANGE_M100_100
GLOVE_JOINTS: dict[str, MotorNormMode] = {
    "thumb_cmc": _FLEX,
    "thumb_mcp": _FLEX,
    "thumb_pip": _FLEX,
    "thumb_dip": _FLEX,
    **{
        f"{finger}_{joint}": _ABDUCT if joint == "mcp_abduction" else _FLEX
        for finger in ("index", "middle", "ring", "pinky")
        for joint in ("mcp_abduction", "mcp_flexion", "dip")
    },
}
"""The glove's joints in stream order; abductions read -100..100 (side to side), the rest 0..100."""

# sensors mounted the other way round on each glove: drive_mode 1 at calibration
GLOVE_REVERSED_JOINTS = {
    "right": (
        "thumb_cmc",
        "thumb_mcp",
        "thumb_pip",
        "thumb_dip",
        "index_mcp_abduction",
        "middle_mcp_abduction",
        "ring_mcp_abduction",
        "ring_mcp_flexion",
        "pinky_mcp_abduction",
    ),
    "left": (
        "thumb_cmc",
        "index_dip",
        "middle_mcp_abduction",
        "middle_dip",
        "pinky_mcp_abduction",
        "pinky_dip",
    ),
}
SPLAY = {"index": 0.3, "middle": 0.3, "ring": 0.3, "pinky": 0.5}
"""Share of a flexor's command that comes from abduction (the pinky spreads more)."""


def glove_to_hand(glove: dict[str, float]) -> dict[str, float]:
    """Glove joints (normalized, no `.pos`) -> the Hope-JR hand's tendon targets (`<motor>.pos`)."""
    hand = {f"thumb_{j}.pos": glove[f"thumb_{j}"] for j in ("cmc", "mcp", "pip", "dip")}
    for finger, splay in SPLAY.items():
        flexion, abduction = glove[f"{finger}_mcp_flexion"], glove[f"{finger}_mcp_abduction"]
        hand[f"{finger}_radial_flexor.pos"] = (1 - splay) * flexion + splay * abduction
        hand[f"{finger}_ulnar_flexor.pos"] = (1 - splay) * flexion - splay * abduction
        hand[f"{finger}_pip_dip.pos"] = glove[f"{finger}_dip"]
    return hand


def parse_glove_line(line: bytes) -> list[int] | None:
    """One streamed sample -> 16 raw values, or None when the line is not exactly 16 integers."""
    fields = line.split()
    if len(fields) != len(GLOVE_JOINTS):
        return None
    try:
        return [int(f) for f in fields]
    except ValueError:
        return None


@dataclass
class HomunculusGloveConfig(TeleoperatorConfig):
    port: str = ""
    """Serial port of the glove (`robokit find-port`; `robokit virtual-arm homunculus_glove` makes one)."""
    baudrate: int = 115_200
    """Baud rate of the glove's serial stream."""
    side: str = "right"
    """Which hand the glove is worn on, "right" or "left" (sets the sensors' directions at calibration)."""
    smoothing: float = 0.2
    """Exponential smoothing of the raw readings per get_action (weight of the newest; 1.0: none)."""
    timeout_s: float = 1.0
    """Raise when the glove sent no complete sample for this long."""

    def __post_init__(self):
        if self.side not in GLOVE_REVERSED_JOINTS:
            raise ValueError(f"HomunculusGloveConfig.side={self.side!r}, expected 'right' or 'left'")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"HomunculusGloveConfig.smoothing={self.smoothing}, expected in (0, 1]")


class HomunculusGlove(Teleoperator):
    """Reads the glove's sensor stream; actions are the Hope-JR hand's tendon targets."""

    name = "homunculus_glove"
    config_class = HomunculusGloveConfig
    joints = GLOVE_JOINTS
    virtual_device = "robokit.robots.virtual_glove:VirtualGlove"
    """What `robokit virtual-arm homunculus_glove` serves (not a servo chain)."""
    input_fn: Callable[[str], str] = staticmethod(input)

    def __init__(self, config: HomunculusGloveConfig):
        super().__init__(config)
        self.config: HomunculusGloveConfig = config
        if not config.port:
            raise ValueError(
                "HomunculusGlove: config.port is empty; pass the glove's serial port "
                "(`robokit virtual-arm homunculus_glove` makes a virtual one)"
            )
        path = self.calibration_fpath
        self.calibration: dict[str, MotorCalibration] = load_calibration(path) if path.is_file() else {}
        self._serial = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._new_sample = threading.Condition()
        self._latest: list[int] | None = None
        self._latest_time = 0.0
        self._error: Exception | None = None
        self._smoothed: list[float] | None = None
        self.samples_received = 0
        self.bad_lines = 0

    # -- description -------------------------------------------------------------------------------
    @property
    def action_features(self) -> dict[str, Any]:
        from robokit.robots.hope_jr import HOPE_JR_HAND_LAYOUT

        return {f"{motor}.pos": float for motor in HOPE_JR_HAND_LAYOUT}

    @property
    def is_connected(self) -> bool:
        return self._serial is not None and self._thread is not None and self._thread.is_alive()

    @property
    def is_calibrated(self) -> bool:
        return set(self.calibration) == set(self.joints)

    # -- connection --------------------------------------------------------------------------------
    def connect(self, calibrate: bool = True) -> None:
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self!r} is already connected")
        import serial

        try:
            self._serial = serial.Serial(self.config.port, self.config.baudrate, timeout=0.05)
        except (serial.SerialException, OSError) as exc:
            raise ConnectionError(
                f"{self!r}: could not open the glove's port {self.config.port!r}: {exc}"
            ) from exc
        self._serial.reset_input_buffer()  # old samples queued before we opened are stale
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._read_loop, daemon=True, name=f"glove-{self.config.port}")
        self._thread.start()
        try:
            self.read_raw(wait_new=True)  # the glove must be streaming
            if not self.is_calibrated:
                if calibrate:
                    self.calibrate()
                else:
                    logger.warning(
                        "%r has no calibration (%s); run `robokit calibrate`", self, self.calibration_fpath
                    )
        except BaseException:
            self.disconnect()
            raise
        logger.info("%r connected", self)

    def _read_loop(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            try:
                chunk = self._serial.read(self._serial.in_waiting or 1)
            except (OSError, TypeError) as exc:  # the port vanished (glove unplugged); pyserial may raise either
                self._error = exc
                with self._new_sample:
                    self._new_sample.notify_all()
                return
            if not chunk:
                continue
            buf += chunk
            *lines, rest = buf.split(b"\n")
            buf = bytearray(rest)
            for line in lines:
                values = parse_glove_line(line)
                if values is None:
                    self.bad_lines += 1
                    continue
                with self._new_sample:
                    self._latest, self._latest_time = values, time.monotonic()
                    self.samples_received += 1
                    self._new_sample.notify_all()

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._serial is not None:
            try:
                self._serial.close()
            except OSError as exc:  # already gone
                logger.debug("%r: closing the port: %s", self, exc)
            self._serial = None

    # -- reading -----------------------------------------------------------------------------------
    def read_raw(self, wait_new: bool = False) -> dict[str, int]:
        """The latest complete sample, raw; `wait_new` waits for one newer than the last returned."""
        if self._serial is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        deadline = time.monotonic() + self.config.timeout_s
        with self._new_sample:
            seen = self.samples_received
            while True:
                if self._error is not None:
                    raise ConnectionError(
                        f"{self!r}: the glove's port {self.config.port} failed: {self._error}"
                    )
                fresh = self._latest is not None and (not wait_new or self.samples_received > seen)
                if fresh and time.monotonic() - self._latest_time <= self.config.timeout_s:
                    return dict(zip(self.joints, self._latest))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{self!r}: no complete sample from the glove on {self.config.port} for "
                        f"{self.config.timeout_s} s ({self.bad_lines} malformed line(s) dropped)"
                    )
                self._new_sample.wait(left)

    def read_joints(self) -> dict[str, float]:
        """The glove's own joints, smoothed and normalized (abductions -100..100, the rest 0..100)."""
        if not self.is_calibrated:
            raise NotCalibratedError(
                f"{self!r} is not calibrated ({self.calibration_fpath}); run `robokit calibrate`"
            )
        raw = list(self.read_raw().values())
        alpha = self.config.smoothing
        if self._smoothed is None:
            self._smoothed = [float(v) for v in raw]
        else:
            self._smoothed = [alpha * v + (1 - alpha) * s for v, s in zip(raw, self._smoothed)]
        return {
            joint: normalize(value, self.calibration[joint], mode, 4096)
            for (joint, mode), value in zip(self.joints.items(), self._smoothed)
        }

    def get_action(self) -> dict[str, float]:
        return glove_to_hand(self.read_joints())

    # -- calibration -------------------------------------------------------------------------------
    def calibrate(self) -> None:
        """Finger by finger: move it through its whole range and press ENTER; ranges saved as JSON."""
        if self._serial is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        reversed_joints = GLOVE_REVERSED_JOINTS[self.config.side]
        calibration = {}
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            joints = [j for j in self.joints if j.startswith(f"{finger}_")]
            done = threading.Event()
            prompt = f"Move your {finger} through its entire range of motion, then press ENTER..."
            threading.Thread(target=lambda p=prompt, d=done: (self.input_fn(p), d.set()), daemon=True).start()
            first = self.read_raw()
            mins = {j: first[j] for j in joints}
            maxs = dict(mins)
            while not done.is_set():
                sample = self.read_raw(wait_new=True)
                for j in joints:
                    mins[j], maxs[j] = min(mins[j], sample[j]), max(maxs[j], sample[j])
            still = [j for j in joints if mins[j] == maxs[j]]
            if still:
                raise ValueError(
                    f"{self!r} calibration: joints {still} did not move; move the whole {finger}"
                )
            for j in joints:
                index = list(self.joints).index(j)
                calibration[j] = MotorCalibration(index, int(j in reversed_joints), 0, mins[j], maxs[j])
        save_calibration(self.calibration_fpath, calibration)
        self.calibration = calibration
        self._smoothed = None
        print(f"Calibration saved to {self.calibration_fpath}")
