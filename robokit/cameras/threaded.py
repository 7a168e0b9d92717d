"""A background thread that keeps the latest frame of a blocking `read()`, shared by the drivers."""

from __future__ import annotations

import logging
import threading
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)


class LatestFrameThread:
    def __init__(self, read: Callable[[], np.ndarray], name: str):
        self._read = read
        self._name = name
        self._frame: np.ndarray | None = None
        self._error: BaseException | None = None
        self._new = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"camera-{name}", daemon=True)
        self.frames_read = 0

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._read()
            except Exception as exc:  # handed to the reader: a lost device is reported, not hidden
                with self._new:
                    self._error = exc
                    self._new.notify_all()
                return
            with self._new:
                self._frame = frame
                self.frames_read += 1
                self._new.notify_all()

    def latest(self, timeout_s: float) -> np.ndarray:
        with self._new:
            if self._frame is None and self._error is None:
                self._new.wait(timeout_s)
            if self._error is not None:
                raise RuntimeError(f"camera {self._name}: capture failed: {self._error}") from self._error
            if self._frame is None:
                raise TimeoutError(f"camera {self._name}: no frame within {timeout_s:.2f} s")
            return self._frame

    def next(self, timeout_s: float) -> np.ndarray:
        """Wait for a frame newer than the latest one."""
        with self._new:
            seen = self.frames_read
            fresh = self._new.wait_for(lambda: self.frames_read > seen or self._error is not None, timeout_s)
            if self._error is None and not fresh:
                raise TimeoutError(f"camera {self._name}: no new frame within {timeout_s:.2f} s")
        return self.latest(0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
