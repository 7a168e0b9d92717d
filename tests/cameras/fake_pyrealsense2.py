"""A FAKE of the pyrealsense2 surface robokit's RealSense driver uses. pyrealsense2 cannot reach a
camera here, so this stands in for librealsense and a USB bus of cameras; it checks robokit's use
of the API (stream requests, alignment, frame sets, lost-device handling), nothing more.

Only names that exist in the real pyrealsense2 are faked (tests/cameras/test_realsense.py checks
them against the real module when it is installed). The fake camera streams, per frame set k:
colour pixel (y, x) = (k % 256, y % 256, x % 256) and raw depth (y, x) = 1000 + k; `align`
turns depth into 2000 + k, so a test can tell an aligned depth image from a raw one.
"""

from __future__ import annotations

import threading
import time
import types

import numpy as np

SURFACE = {
    # name in pyrealsense2 -> attributes robokit uses on it
    "pipeline": ["start", "stop", "wait_for_frames"],
    "config": ["enable_device", "enable_stream"],
    "align": ["process"],
    "stream": ["color", "depth"],
    "format": ["rgb8", "z16"],
    "composite_frame": ["get_color_frame", "get_depth_frame"],
    "frame": ["get_data"],
    "pipeline_profile": ["get_device"],
    "device": ["first_depth_sensor", "get_info"],
    "context": ["query_devices"],
    "camera_info": ["serial_number"],
    "depth_sensor": ["get_depth_scale"],
}


class FakeBus:
    """The cameras plugged in: serial -> supported (width, height) modes."""

    def __init__(self):
        self.devices: dict[str, list[tuple[int, int]]] = {}
        self.unplugged = threading.Event()
        self.started: list[dict] = []  # every successful pipeline.start request
        self.aligned = 0

    def plug(self, serial: str, modes=((640, 480), (1280, 720))):
        self.devices[serial] = list(modes)
        self.unplugged.clear()

    def unplug(self, serial: str):
        self.devices.pop(serial, None)
        self.unplugged.set()


class stream:
    color = "stream.color"
    depth = "stream.depth"


class format:
    rgb8 = "format.rgb8"
    z16 = "format.z16"


class FakeFrame:
    def __init__(self, data: np.ndarray):
        self._data = data

    def get_data(self):
        return self._data

    def __bool__(self):
        return True


class FakeFrameSet:
    def __init__(self, color: np.ndarray | None, depth: np.ndarray | None):
        self.color, self.depth = color, depth

    def get_color_frame(self):
        return FakeFrame(self.color) if self.color is not None else _NoFrame()

    def get_depth_frame(self):
        return FakeFrame(self.depth) if self.depth is not None else _NoFrame()


class _NoFrame:
    def __bool__(self):
        return False


class FakeDepthSensor:
    def get_depth_scale(self):
        return 0.001


class camera_info:
    serial_number = "camera_info.serial_number"


class FakeDevice:
    def __init__(self, serial: str):
        self.serial = serial

    def first_depth_sensor(self):
        return FakeDepthSensor()

    def get_info(self, info):
        if info != camera_info.serial_number:
            raise RuntimeError(f"fake device: no info {info}")
        return self.serial


class FakeProfile:
    def __init__(self, serial: str):
        self.serial = serial

    def get_device(self):
        return FakeDevice(self.serial)


def make_module(bus: FakeBus) -> types.ModuleType:
    """A `pyrealsense2` module bound to `bus` (install it in sys.modules)."""

    class config:
        def __init__(self):
            self.serial = None
            self.streams: dict[str, tuple] = {}

        def enable_device(self, serial: str):
            self.serial = serial

        def enable_stream(self, stream_type, width, height, fmt, framerate):
            self.streams[stream_type] = (width, height, fmt, framerate)

    class pipeline:
        def __init__(self):
            self._request = None
            self._k = 0
            self.running = False

        def start(self, cfg: config):
            serial = cfg.serial or next(iter(bus.devices), None)
            if serial is None:
                raise RuntimeError("No device connected")
            if serial not in bus.devices:
                raise RuntimeError(f"No device connected with serial {serial}")
            for w, h, _fmt, _fps in cfg.streams.values():
                if (w, h) not in bus.devices[serial]:
                    raise RuntimeError("Couldn't resolve requests")
            self._request = (serial, dict(cfg.streams))
            self.running = True
            bus.started.append({"serial": serial, "streams": dict(cfg.streams)})
            return FakeProfile(serial)

        def wait_for_frames(self, timeout_ms: int = 5000):
            if not self.running:
                raise RuntimeError("wait_for_frames cannot be called before start()")
            serial, streams = self._request
            if serial not in bus.devices:
                time.sleep(min(timeout_ms, 50) / 1000)  # shortened: the real one waits timeout_ms
                raise RuntimeError(f"Frame didn't arrive within {timeout_ms}")
            w, h, _fmt, fps = streams[stream.color]
            time.sleep(1 / fps)
            k = self._k
            self._k += 1
            color = np.empty((h, w, 3), np.uint8)
            color[..., 0] = k % 256
            color[..., 1] = (np.arange(h) % 256)[:, None]
            color[..., 2] = (np.arange(w) % 256)[None, :]
            depth = None
            if stream.depth in streams:
                dw, dh = streams[stream.depth][:2]
                depth = np.full((dh, dw), 1000 + k, np.uint16)
            return FakeFrameSet(color, depth)

        def stop(self):
            if not self.running:
                raise RuntimeError("stop() cannot be called before start()")
            self.running = False

    class context:
        def query_devices(self):
            return [FakeDevice(serial) for serial in bus.devices]

    class align:
        def __init__(self, align_to):
            if align_to != stream.color:
                raise ValueError(f"fake align supports the colour stream only, got {align_to}")

        def process(self, frames: FakeFrameSet):
            bus.aligned += 1
            depth = None if frames.depth is None else frames.depth + np.uint16(1000)
            return FakeFrameSet(frames.color, depth)

    module = types.ModuleType("pyrealsense2")
    module.__doc__ = "FAKE pyrealsense2 (tests/cameras/fake_pyrealsense2.py)"
    module.config, module.pipeline, module.align, module.context = config, pipeline, align, context
    module.camera_info = camera_info
    module.stream, module.format = stream, format
    module.composite_frame, module.frame = FakeFrameSet, FakeFrame
    module.pipeline_profile, module.device, module.depth_sensor = FakeProfile, FakeDevice, FakeDepthSensor
    return module
