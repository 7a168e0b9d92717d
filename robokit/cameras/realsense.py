"""Intel RealSense colour (and optionally depth) through pyrealsense2 (optional extra)."""

from __future__ import annotations

import numpy as np

from robokit.cameras.camera import Camera, CameraConfig, rotate


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise ImportError("RealSense cameras need pyrealsense2: pip install pyrealsense2") from exc
    return rs


class RealSenseCamera(Camera):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        self._pipeline = None
        self.last_depth: np.ndarray | None = None

    @property
    def is_connected(self) -> bool:
        return self._pipeline is not None

    def connect(self) -> None:
        rs = _rs()
        cfg = rs.config()
        if self.config.index_or_path not in ("", "0"):
            cfg.enable_device(self.config.index_or_path)
        cfg.enable_stream(
            rs.stream.color, self.config.width, self.config.height, rs.format.rgb8, self.config.fps
        )
        if self.config.use_depth:
            cfg.enable_stream(
                rs.stream.depth, self.config.width, self.config.height, rs.format.z16, self.config.fps
            )
        pipeline = rs.pipeline()
        try:
            pipeline.start(cfg)
        except RuntimeError as exc:
            raise ConnectionError(f"RealSense {self.config.index_or_path!r}: {exc}") from exc
        self._pipeline = pipeline
        self._start_capture(f"realsense-{self.config.index_or_path}")

    def _read_device(self) -> np.ndarray:
        frames = self._pipeline.wait_for_frames(timeout_ms=2000)
        if self.config.use_depth:
            self.last_depth = rotate(np.asanyarray(frames.get_depth_frame().get_data()), self.config.rotation)
        return rotate(np.asanyarray(frames.get_color_frame().get_data()), self.config.rotation)

    def disconnect(self) -> None:
        self._stop_capture()
        if self._pipeline is not None:
            self._pipeline.stop()
            self._pipeline = None
