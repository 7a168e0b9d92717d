"""Intel RealSense colour (and optionally depth) through pyrealsense2 (optional extra).

The colour stream is RGB8; with `use_depth` the Z16 depth stream is aligned to the colour image
(`rs.align`), so `depth[y, x]` is the distance at colour pixel (y, x), in units of `depth_scale`
metres (1 mm on D400 cameras). Both come from one frame set: `read_rgbd()` / `async_read_rgbd()`
return a matching pair; `read()` / `async_read()` return the colour image like every camera.
A device that stops delivering frames is reopened (`CameraConfig.reconnect_attempts`), then
reported with `CameraLostError`.
"""

from __future__ import annotations

import numpy as np

from robokit.cameras.camera import Camera, CameraConfig, rotate

FRAME_TIMEOUT_MS = 2000
"""A frame set that does not arrive within this long means the device is lost."""
FIRST_FRAME_TIMEOUT_MS = 5000
"""The first frame set after starting the pipeline (auto-exposure settles) may take this long."""


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise ImportError("RealSense cameras need pyrealsense2: pip install pyrealsense2") from exc
    return rs


class RealSenseCamera(Camera):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        self.serial = "" if config.index_or_path in ("", "0") else config.index_or_path
        self._pipeline = None
        self._align = None
        self.depth_scale: float | None = None
        """Metres per depth unit (set on connect with use_depth)."""

    def __repr__(self) -> str:
        return f"RealSenseCamera({self.serial or 'first device'!r})"

    @property
    def is_connected(self) -> bool:
        return self._pipeline is not None

    @property
    def depth_shape(self) -> tuple[int, int]:
        return (self.config.height, self.config.width)

    def connect(self) -> None:
        self._pipeline = self._start_pipeline()
        try:
            color, depth = self._read_device(FIRST_FRAME_TIMEOUT_MS)
            if color.shape != self.shape or (depth is not None and depth.shape != self.depth_shape):
                raise ConnectionError(
                    f"{self!r}: frames are {color.shape[1]}x{color.shape[0]}, "
                    f"the config asks for {self.config.width}x{self.config.height}"
                )
        except Exception:
            self.disconnect()
            raise
        self._start_capture(repr(self))

    def _start_pipeline(self):
        rs = _rs()
        # pipeline.start() waits ~15 s for a missing device; the device list answers at once.
        serials = [dev.get_info(rs.camera_info.serial_number) for dev in rs.context().query_devices()]
        if not serials or (self.serial and self.serial not in serials):
            raise ConnectionError(
                f"{self!r}: not connected (connected RealSense cameras: {', '.join(serials) or 'none'}); "
                "`robokit find-cameras` lists the cameras"
            )
        cfg = rs.config()
        if self.serial:
            cfg.enable_device(self.serial)
        # The sensor streams unrotated images: width/height in the config are after rotation.
        w, h = self.config.width, self.config.height
        if self.config.rotation in (90, 270):
            w, h = h, w
        cfg.enable_stream(rs.stream.color, w, h, rs.format.rgb8, self.config.fps)
        if self.config.use_depth:
            cfg.enable_stream(rs.stream.depth, w, h, rs.format.z16, self.config.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            raise ConnectionError(
                f"{self!r}: could not start {w}x{h}@{self.config.fps} colour"
                f"{' + depth' if self.config.use_depth else ''} ({exc}); "
                "`robokit find-cameras` lists the connected cameras"
            ) from exc
        if self.config.use_depth:
            self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
            self._align = rs.align(rs.stream.color)
        return pipeline

    def _read_device(self, timeout_ms: int = FRAME_TIMEOUT_MS) -> tuple[np.ndarray, np.ndarray | None]:
        pipeline = self._pipeline
        if pipeline is None:
            raise ConnectionError(f"{self!r}: the pipeline is stopped")
        try:
            frames = pipeline.wait_for_frames(timeout_ms=timeout_ms)
        except RuntimeError as exc:  # librealsense reports a timeout or a lost device this way
            raise ConnectionError(f"{self!r}: no frames ({exc})") from exc
        if self._align is not None:
            frames = self._align.process(frames)
        color_frame = frames.get_color_frame()
        if not color_frame:
            raise ConnectionError(f"{self!r}: a frame set without a colour frame")
        # Copies: librealsense recycles a small pool of frame buffers.
        color = rotate(np.array(np.asanyarray(color_frame.get_data()), copy=True), self.config.rotation)
        depth = None
        if self.config.use_depth:
            depth_frame = frames.get_depth_frame()
            if not depth_frame:
                raise ConnectionError(f"{self!r}: a frame set without a depth frame")
            depth = rotate(np.array(np.asanyarray(depth_frame.get_data()), copy=True), self.config.rotation)
        return color, depth

    def _reopen_device(self) -> None:
        old, self._pipeline, self._align = self._pipeline, None, None
        if old is not None:
            try:
                old.stop()
            except RuntimeError:
                pass  # already stopped by the lost device
        pipeline = self._start_pipeline()
        self._pipeline = pipeline
        if self._thread is None:  # disconnect() while reconnecting
            self._pipeline = None
            pipeline.stop()
            raise ConnectionError(f"{self!r}: disconnected while reconnecting")

    # colour like every camera; depth from the same frame set
    def read(self) -> np.ndarray:
        return self.read_rgbd()[0]

    def async_read(self, timeout_s: float = 0.2) -> np.ndarray:
        return self.async_read_rgbd(timeout_s)[0]

    def read_rgbd(self) -> tuple[np.ndarray, np.ndarray | None]:
        """A new (colour (H, W, 3) uint8, depth (H, W) uint16 or None) pair from one frame set."""
        return self._capture().next(timeout_s=max(1.0, 5.0 / self.config.fps))

    def async_read_rgbd(self, timeout_s: float = 0.2) -> tuple[np.ndarray, np.ndarray | None]:
        """The latest (colour, depth) pair; TimeoutError when older than `config.max_frame_age_s`."""
        return self._capture().latest(timeout_s, self.config.max_frame_age_s)

    def async_read_depth(self, timeout_s: float = 0.2) -> np.ndarray:
        """The latest depth image (H, W) uint16, in `depth_scale` metres per unit."""
        if not self.config.use_depth:
            raise RuntimeError(f"{self!r}: depth is off; set CameraConfig.use_depth=True")
        return self.async_read_rgbd(timeout_s)[1]

    def disconnect(self) -> None:
        stopped = self._stop_capture()
        pipeline, self._pipeline, self._align = self._pipeline, None, None
        if pipeline is not None and stopped:
            try:
                pipeline.stop()
            except RuntimeError:
                pass  # the device is gone; nothing left to stop
