"""A synthetic camera: a deterministic moving pattern at a fixed frame rate (tests, virtual robots).

Frame `k` depends only on k and the size: a colour gradient plus a bright square that moves one
step per frame, so a recorded video shows motion and a test can tell frames apart.
"""

from __future__ import annotations

import time

import numpy as np

from robokit.cameras.camera import Camera, CameraConfig, rotate


def synthetic_frame(index: int, height: int, width: int) -> np.ndarray:
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = ys.astype(np.uint8)
    frame[..., 1] = xs.astype(np.uint8)
    frame[..., 2] = (index * 4) % 256
    size = max(4, min(height, width) // 6)
    x = (index * 7) % max(1, width - size)
    y = (index * 3) % max(1, height - size)
    frame[y : y + size, x : x + size] = 255
    return frame


class SyntheticCamera(Camera):
    def __init__(self, config: CameraConfig):
        super().__init__(config)
        self._index = 0
        self._next_t = 0.0

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    def connect(self) -> None:
        self._next_t = time.perf_counter()
        self._start_capture(f"synthetic-{id(self):x}")

    def _read_device(self) -> np.ndarray:
        # paced like a device: one frame per 1/fps
        delay = self._next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next_t = max(self._next_t + 1.0 / self.config.fps, time.perf_counter() - 1.0 / self.config.fps)
        h, w = self.config.height, self.config.width
        if self.config.rotation in (90, 270):
            h, w = w, h
        frame = rotate(synthetic_frame(self._index, h, w), self.config.rotation)
        self._index += 1
        return frame

    def disconnect(self) -> None:
        self._stop_capture()
