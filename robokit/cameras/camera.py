"""The Camera contract: `connect()`, `read()` (blocking, a fresh frame), `async_read()` (the latest
frame kept by a background thread), `disconnect()`. Frames are uint8 RGB arrays (height, width, 3)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass
class CameraConfig:
    """A camera: `type` picks the driver ("opencv", "synthetic", "realsense")."""

    type: str = "synthetic"
    """Driver: "opencv" (webcams, video files), "synthetic" (a moving test pattern), "realsense"."""
    index_or_path: str = "0"
    """OpenCV device index ("0"), device path (/dev/video2) or video file; RealSense serial number."""
    width: int = 640
    """Frame width in pixels."""
    height: int = 480
    """Frame height in pixels."""
    fps: int = 30
    """Frames per second requested from the device."""
    rotation: int = 0
    """Rotate frames by 0, 90, 180 or 270 degrees clockwise (width/height are after rotation)."""
    use_depth: bool = False
    """RealSense only: also read depth (aligned to the colour image)."""
    reconnect_attempts: int = 5
    """Times to reopen a lost device (waiting 0.1 s, doubling up to 2 s, between attempts) before
    reads raise CameraLostError; 0 fails at once. OpenCV and RealSense."""
    max_frame_age_s: float = 1.0
    """async_read() raises TimeoutError rather than return a frame older than this (a stalled or
    lost device); a control loop never acts on an old image unknowingly."""

    def __post_init__(self):
        if self.rotation not in (0, 90, 180, 270):
            raise ValueError(f"CameraConfig.rotation={self.rotation}, expected 0, 90, 180 or 270")
        if self.reconnect_attempts < 0:
            raise ValueError(f"CameraConfig.reconnect_attempts={self.reconnect_attempts}, expected >= 0")
        if not self.max_frame_age_s > 0:
            raise ValueError(f"CameraConfig.max_frame_age_s={self.max_frame_age_s}, expected > 0")
        for name in ("width", "height", "fps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"CameraConfig.{name}={getattr(self, name)}, expected > 0")


class Camera(abc.ABC):
    """A driver implements `connect`/`disconnect`/`is_connected` and `_read_device()` (one blocking
    frame); a capture thread started by `_start_capture` is the only caller of `_read_device`, and
    `read`/`async_read` take frames from it."""

    def __init__(self, config: CameraConfig):
        self.config = config
        self._thread = None  # LatestFrameThread while connected

    def _read_device(self) -> np.ndarray:
        raise NotImplementedError

    def _reopen_device(self) -> None:
        """Reopen a lost device (called from the capture thread); drivers that can, override it."""
        raise NotImplementedError

    def _start_capture(self, name: str) -> None:
        from robokit.cameras.threaded import LatestFrameThread

        can_reopen = type(self)._reopen_device is not Camera._reopen_device
        self._thread = LatestFrameThread(
            self._read_device,
            name,
            reopen=self._reopen_device if can_reopen else None,
            reconnect_attempts=self.config.reconnect_attempts,
        )
        self._thread.start()

    def _stop_capture(self) -> bool:
        """Stop the capture thread; False if it is still stuck in a device call after the join timeout."""
        thread, self._thread = self._thread, None
        return thread is None or thread.stop()

    def _capture(self):
        if self._thread is None:
            raise RuntimeError(f"{self!r} is not connected; call connect() first")
        return self._thread

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 3)

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    def read(self) -> np.ndarray:
        """A frame newer than the last one (blocks until the capture thread delivers one).

        Raises CameraLostError when the device is gone for good, TimeoutError when no frame comes.
        """
        return self._capture().next(timeout_s=max(1.0, 5.0 / self.config.fps))

    def async_read(self, timeout_s: float = 0.2) -> np.ndarray:
        """The latest frame captured by the background thread (waits for the first one).

        Raises TimeoutError when that frame is older than `config.max_frame_age_s`.
        """
        return self._capture().latest(timeout_s, self.config.max_frame_age_s)

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.disconnect()


def rotate(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate clockwise by `rotation` degrees."""
    return frame if rotation == 0 else np.ascontiguousarray(np.rot90(frame, k=-(rotation // 90)))


def parse_camera_specs(spec: str) -> dict[str, CameraConfig]:
    """`"front=synthetic:640x480@30,wrist=opencv:/dev/video2:320x240@30"` -> configs by name."""
    cameras: dict[str, CameraConfig] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if "=" not in item:
            raise ValueError(
                f"camera spec {item!r}: expected NAME=TYPE[:SOURCE][:WxH][@FPS], e.g. front=synthetic:640x480@30"
            )
        name, rest = item.split("=", 1)
        fps = 30
        if "@" in rest:
            rest, fps_text = rest.rsplit("@", 1)
            fps = int(fps_text)
        parts = rest.split(":")
        kind, width, height, source = parts[0], 640, 480, "0"
        for part in parts[1:]:
            if "x" in part and all(p.isdigit() for p in part.split("x", 1)):
                width, height = (int(p) for p in part.split("x", 1))
            else:
                source = part
        if kind not in ("opencv", "synthetic", "realsense"):
            raise ValueError(f"camera spec {item!r}: type {kind!r}, expected opencv, synthetic or realsense")
        cameras[name] = CameraConfig(type=kind, index_or_path=source, width=width, height=height, fps=fps)
    return cameras


def make_camera(config: CameraConfig) -> Camera:
    if config.type == "synthetic":
        from robokit.cameras.synthetic import SyntheticCamera

        return SyntheticCamera(config)
    if config.type == "opencv":
        from robokit.cameras.opencv import OpenCVCamera

        return OpenCVCamera(config)
    if config.type == "realsense":
        from robokit.cameras.realsense import RealSenseCamera

        return RealSenseCamera(config)
    raise ValueError(f"CameraConfig.type={config.type!r}, expected 'opencv', 'synthetic' or 'realsense'")
