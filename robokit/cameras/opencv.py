"""OpenCV cameras: webcams by index or /dev/videoN, and video files (handy for tests and replays)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from robokit.cameras.camera import Camera, CameraConfig, rotate
from robokit.errors import install_hint

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_MS = 3000
"""FFmpeg sources (streams, pipes, files): give up opening after this long."""
READ_TIMEOUT_MS = 2000
"""FFmpeg sources: a read that waits longer fails (and the camera reconnects)."""


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            f"OpenCV cameras need opencv-python-headless: {install_hint('hardware')}"
        ) from exc
    return cv2


class OpenCVCamera(Camera):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        source = config.index_or_path
        self.source: int | str = int(source) if source.isdigit() else source
        self.is_file = (
            isinstance(self.source, str)
            and Path(self.source).is_file()
            and not self.source.startswith("/dev/")
        )
        self._cap = None
        self._next_t = 0.0

    def __repr__(self) -> str:
        return f"OpenCVCamera({self.source!r})"

    @property
    def is_connected(self) -> bool:
        return self._cap is not None

    def connect(self) -> None:
        self._cap = self._open()
        try:
            self._check_size(self._read_device())  # fails early rather than in the middle of a recording
        except Exception:
            self.disconnect()
            raise
        self._start_capture(repr(self))

    def _open(self):
        cv2 = _cv2()
        if isinstance(self.source, int) or self.source.startswith("/dev/video"):
            cap = cv2.VideoCapture(self.source)
        else:
            # Streams, pipes and files go through FFmpeg, which can bound a stalled open or read
            # (a webcam's V4L2 read gives up by itself).
            timeouts = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                OPEN_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                READ_TIMEOUT_MS,
            ]
            cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG, timeouts)
        if not cap.isOpened():
            cap.release()
            raise ConnectionError(
                f"{self!r}: could not open the camera; `robokit find-cameras` lists the available ones"
            )
        if not self.is_file:
            w, h = (
                (self.config.height, self.config.width)
                if self.config.rotation in (90, 270)
                else (self.config.width, self.config.height)
            )
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
            cap.set(cv2.CAP_PROP_FPS, self.config.fps)
        return cap

    def _check_size(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape:
            raise ConnectionError(
                f"{self!r}: frames are {frame.shape[1]}x{frame.shape[0]}, "
                f"the config asks for {self.config.width}x{self.config.height}"
            )

    def _reopen_device(self) -> None:
        """Release the lost capture and open the source again (capture thread only)."""
        old, self._cap = self._cap, None
        if old is not None:
            old.release()
        cap = self._open()
        self._cap = cap
        try:
            if self._thread is None:
                raise ConnectionError(f"{self!r}: disconnected while reconnecting")
            self._check_size(self._read_device())  # another device may have taken its place
        except Exception:
            self._cap = None
            cap.release()
            raise

    def _read_device(self) -> np.ndarray:
        cv2 = _cv2()
        cap = self._cap
        if cap is None:
            raise ConnectionError(f"{self!r}: the capture is closed")
        if self.is_file:  # a file plays at the configured rate, looping at its end
            delay = self._next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(
                self._next_t + 1.0 / self.config.fps, time.perf_counter() - 1.0 / self.config.fps
            )
        ok, bgr = cap.read()
        if not ok and self.is_file:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = cap.read()
        if not ok:
            raise ConnectionError(f"{self!r}: read failed (device unplugged or stream ended)")
        return rotate(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.config.rotation)

    def disconnect(self) -> None:
        stopped = self._stop_capture()
        cap, self._cap = self._cap, None
        if cap is not None and stopped:
            cap.release()
        elif cap is not None:  # releasing under a thread blocked in read() could crash the process
            logger.warning("%r: the capture thread is stuck in a device read; leaving the device open", self)


def find_opencv_cameras(max_index: int = 10) -> list[dict]:
    """Cameras OpenCV can open: /dev/video* on Linux, else indices 0..max_index-1."""
    cv2 = _cv2()
    candidates: list[int | str] = sorted(str(p) for p in Path("/dev").glob("video*")) or list(
        range(max_index)
    )
    found = []
    # probing is expected to fail for most candidates: keep OpenCV's "can't open camera" warnings quiet
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    level = log.getLogLevel() if log is not None else None
    if log is not None:
        log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        for source in candidates:
            cap = cv2.VideoCapture(source)
            if cap.isOpened():
                found.append(
                    {
                        "type": "opencv",
                        "index_or_path": str(source),
                        "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                        "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                        "fps": float(cap.get(cv2.CAP_PROP_FPS)),
                    }
                )
            cap.release()
    finally:
        if log is not None:
            log.setLogLevel(level)
    return found
