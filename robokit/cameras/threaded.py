"""A background thread that keeps the latest frame of a blocking `read()`, shared by the drivers.

When a read fails and the driver can reopen its device, the thread reconnects with bounded retries
and exponential backoff, logging each attempt; after the last one the error (naming the camera) is
handed to the reader. Readers never get a stale frame for long: `latest()` refuses a frame older
than `max_age_s`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
"""Wait before the first reconnect attempt; doubled after each failed one."""
MAX_BACKOFF_S = 2.0
"""Longest wait between two reconnect attempts."""


class CameraLostError(ConnectionError):
    """A camera stopped delivering frames and could not be reopened; the message names it."""

    def with_cause(self, cause: BaseException) -> CameraLostError:
        self.__cause__ = cause
        return self


class LatestFrameThread:
    def __init__(
        self,
        read: Callable[[], Any],
        name: str,
        reopen: Callable[[], None] | None = None,
        reconnect_attempts: int = 0,
    ):
        self._read = read
        self._reopen = reopen
        self._attempts = reconnect_attempts if reopen is not None else 0
        self._name = name
        self._frame: Any = None
        self._frame_t = 0.0
        self._error: BaseException | None = None
        self._new = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"camera-{name}", daemon=True)
        self.frames_read = 0
        self.reconnects = 0
        """Successful reconnections so far."""
        self.reconnecting = False
        """True while the device is lost and being reopened."""

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._read()
            except Exception as exc:  # noqa: BLE001 - handed to the reader: a lost device is reported, not hidden
                if self._stop.is_set() or self._reconnect(exc):
                    continue
                return
            with self._new:
                self._frame = frame
                self._frame_t = time.monotonic()
                self.frames_read += 1
                self._new.notify_all()

    def _fail(self, error: CameraLostError) -> None:
        with self._new:
            self._error = error
            self._new.notify_all()

    def _reconnect(self, exc: Exception) -> bool:
        """Reopen the device with backoff; False (and the error handed to readers) when it stays lost."""
        if self._attempts <= 0:
            self._fail(CameraLostError(f"camera {self._name}: capture failed: {exc}").with_cause(exc))
            return False
        self.reconnecting = True
        start = time.monotonic()
        logger.warning(
            "camera %s lost (%s); reconnecting, up to %d attempt(s)", self._name, exc, self._attempts
        )
        delay, last = FIRST_BACKOFF_S, exc
        for attempt in range(1, self._attempts + 1):
            if self._stop.wait(delay):
                return False  # disconnect() during the backoff
            try:
                self._reopen()
            except Exception as err:  # noqa: BLE001 - any failure to reopen counts as an attempt
                last = err
                logger.warning(
                    "camera %s: reconnect attempt %d/%d failed: %s", self._name, attempt, self._attempts, err
                )
                delay = min(2 * delay, MAX_BACKOFF_S)
                continue
            self.reconnects += 1
            self.reconnecting = False
            logger.warning(
                "camera %s reconnected (attempt %d, %.1f s without frames)",
                self._name,
                attempt,
                time.monotonic() - start,
            )
            return True
        self.reconnecting = False
        self._fail(
            CameraLostError(
                f"camera {self._name}: lost ({exc}) and not reopened after {self._attempts} attempt(s) "
                f"over {time.monotonic() - start:.1f} s; last error: {last}"
            ).with_cause(last)
        )
        return False

    def latest(self, timeout_s: float, max_age_s: float | None = None) -> Any:
        """The newest frame (waiting up to `timeout_s` for the first); TimeoutError if it is older than `max_age_s`."""
        with self._new:
            if self._frame is None and self._error is None:
                self._new.wait(timeout_s)
            if self._error is not None:  # a fresh exception per reader, the device error as its cause
                raise CameraLostError(str(self._error)) from self._error.__cause__
            if self._frame is None:
                raise TimeoutError(f"camera {self._name}: no frame within {timeout_s:.2f} s")
            age = time.monotonic() - self._frame_t
            if max_age_s is not None and age > max_age_s:
                state = "reconnecting" if self.reconnecting else "the device stalled"
                raise TimeoutError(
                    f"camera {self._name}: the latest frame is {age:.2f} s old (max_frame_age_s={max_age_s}; "
                    f"{state})"
                )
            return self._frame

    def next(self, timeout_s: float) -> Any:
        """Wait for a frame newer than the latest one."""
        with self._new:
            seen = self.frames_read
            fresh = self._new.wait_for(lambda: self.frames_read > seen or self._error is not None, timeout_s)
            if self._error is None and not fresh:
                state = " (reconnecting)" if self.reconnecting else ""
                raise TimeoutError(f"camera {self._name}: no new frame within {timeout_s:.2f} s{state}")
        return self.latest(0)

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop capturing; False if the thread is still inside a blocking device call after `timeout_s`."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()
