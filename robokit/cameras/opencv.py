"""OpenCV cameras: webcams by index or /dev/videoN, and video files (handy for tests and replays)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from robokit.cameras.camera import Camera, CameraConfig, rotate

logger = logging.getLogger(__name__)


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            "OpenCV cameras need opencv-python-headless: pip install 'robokit[hardware]'"
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
        cv2 = _cv2()
        cap = cv2.VideoCapture(self.source)
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
        self._cap = cap
        first = self._read_device()  # fails early on a wrong size rather than in the middle of a recording
        if first.shape != self.shape:
            self.disconnect()
            raise ConnectionError(
                f"{self!r}: frames are {first.shape[1]}x{first.shape[0]}, "
                f"the config asks for {self.config.width}x{self.config.height}"
            )
        self._start_capture(repr(self))

    def _read_device(self) -> np.ndarray:
        cv2 = _cv2()
        if self.is_file:  # a file plays at the configured rate, looping at its end
            delay = self._next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(
                self._next_t + 1.0 / self.config.fps, time.perf_counter() - 1.0 / self.config.fps
            )
        ok, bgr = self._cap.read()
        if not ok and self.is_file:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._cap.read()
        if not ok:
            raise ConnectionError(f"{self!r}: read failed (device unplugged or stream ended)")
        return rotate(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self.config.rotation)

    def disconnect(self) -> None:
        self._stop_capture()
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def find_opencv_cameras(max_index: int = 10) -> list[dict]:
    """Cameras OpenCV can open: /dev/video* on Linux, else indices 0..max_index-1."""
    cv2 = _cv2()
    candidates: list[int | str] = sorted(str(p) for p in Path("/dev").glob("video*")) or list(
        range(max_index)
    )
    found = []
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
    return found
