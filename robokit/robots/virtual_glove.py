"""A virtual Homunculus glove: its sensor stream (lines of 16 raw readings) behind a pseudo-terminal.

    with VirtualGlove(calibration_id="right", calibration_dir=tmp) as glove:   # glove.port = /dev/pts/N
        glove.set("index_mcp_flexion", 3072)                                    # bend the index "by hand"
        teleop = make_teleoperator("homunculus_glove", port=glove.port, id="right", calibration_dir=tmp)

`robokit virtual-arm homunculus_glove [--animate]` serves one from the command line. It has the
surface of `VirtualArm` (port, ports, calibration_path, close) so the command treats both alike.
"""

from __future__ import annotations

import math
import os
import threading
import time
import tty
from pathlib import Path

from robokit.motors.calibration import MotorCalibration, save_calibration
from robokit.robots.robot import DEFAULT_CALIBRATION_DIR
from robokit.teleoperators.homunculus_glove import GLOVE_JOINTS, HomunculusGlove

CAL_RANGE = (1024, 3072)
"""Range written to the virtual glove's calibration; readings rest in the middle."""


class VirtualGlove:
    name = HomunculusGlove.name
    emulator = None
    """No servo chain (the command and tests check `emulator` / `sides` as for a VirtualArm)."""

    @property
    def sides(self) -> dict:
        return {}

    def __init__(
        self,
        calibration_id: str | None = None,
        calibration_dir: str | Path | None = None,
        animate: bool = False,
        rate_hz: float = 200.0,
        **_ignored,
    ):
        self.raw: dict[str, int] = {joint: sum(CAL_RANGE) // 2 for joint in GLOVE_JOINTS}
        """The readings streamed next; change them with `set` (a hand moving in the glove)."""
        self.rate_hz = rate_hz
        self.lines_sent = 0
        self.corrupt_next = 0
        """The next N lines go out garbled (a glitch on the USB line)."""
        self._lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)  # nobody reading: drop samples rather than block
        self.port = os.ttyname(self._slave)
        self.calibration_path = (
            self.write_calibration(calibration_id, calibration_dir) if calibration_id is not None else None
        )
        self._animate = animate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._stream, daemon=True, name=f"virtual-glove-{self.port}")
        self._thread.start()

    @property
    def ports(self) -> dict[str, str]:
        return {"": self.port}

    def set(self, joint: str, raw: int) -> None:
        if joint not in self.raw:
            raise KeyError(f"virtual glove: no joint {joint!r}; joints: {list(self.raw)}")
        with self._lock:
            self.raw[joint] = int(raw)

    def write_calibration(self, calibration_id: str, calibration_dir: str | Path | None = None) -> Path:
        """A calibration file for this glove: every joint ranges over CAL_RANGE, no reversed sensors."""
        base = Path(calibration_dir).expanduser() if calibration_dir else DEFAULT_CALIBRATION_DIR
        path = base / "teleoperators" / HomunculusGlove.name / f"{calibration_id}.json"
        save_calibration(path, {j: MotorCalibration(i, 0, 0, *CAL_RANGE) for i, j in enumerate(GLOVE_JOINTS)})
        return path

    def _stream(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(1.0 / self.rate_hz):
            if self._animate:  # slow waves through the fingers, as if someone wore the glove
                t = time.monotonic() - t0
                with self._lock:
                    for k, joint in enumerate(self.raw):
                        self.raw[joint] = int(sum(CAL_RANGE) / 2 + 900 * math.sin(0.7 * t + 0.4 * k))
            with self._lock:
                line = " ".join(str(v) for v in self.raw.values()) + "\n"
                if self.corrupt_next > 0:
                    self.corrupt_next -= 1
                    line = line[: len(line) // 2] + "\n"  # a truncated sample
            try:
                os.write(self._master, line.encode())
                self.lines_sent += 1
            except BlockingIOError:
                pass
            except OSError:
                return

    def close(self) -> None:
        """Stop streaming and close the pty (the glove is unplugged)."""
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "VirtualGlove":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
