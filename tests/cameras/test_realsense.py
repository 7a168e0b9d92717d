"""The RealSense driver through a FAKE of the pyrealsense2 surface it uses (fake_pyrealsense2.py):
no camera can be attached here. The last tests use the real pyrealsense2 when it is installed."""

import importlib.util
import pathlib
import sys
import time

import numpy as np
import pytest

from robokit.cameras import CameraConfig, make_camera
from robokit.cameras.threaded import CameraLostError

_spec = importlib.util.spec_from_file_location(
    "fake_pyrealsense2", pathlib.Path(__file__).with_name("fake_pyrealsense2.py")
)
fakes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakes)

SERIAL = "123456789"


@pytest.fixture
def bus(monkeypatch):
    bus = fakes.FakeBus()
    bus.plug(SERIAL)
    monkeypatch.setitem(sys.modules, "pyrealsense2", fakes.make_module(bus))
    return bus


def _camera(**kw):
    return make_camera(CameraConfig("realsense", SERIAL, **{"width": 640, "height": 480, "fps": 60, **kw}))


def test_connect_requests_the_streams_and_reads_colour(bus):
    cam = _camera()
    with cam:
        assert cam.is_connected and repr(cam) == f"RealSenseCamera({SERIAL!r})"
        frame = cam.async_read(timeout_s=1)
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        a, b = cam.read(), cam.read()
        assert a[0, 0, 0] != b[0, 0, 0]  # read() waits for a newer frame set
        assert a[5, 7, 1:].tolist() == [5, 7]  # rows and columns where the device put them
    assert not cam.is_connected
    fmt = sys.modules["pyrealsense2"].format
    assert bus.started == [{"serial": SERIAL, "streams": {"stream.color": (640, 480, fmt.rgb8, 60)}}]


def test_colour_and_aligned_depth_from_one_frame_set(bus):
    cam = _camera(use_depth=True)
    with cam:
        color, depth = cam.async_read_rgbd(timeout_s=1)
        assert color.shape == (480, 640, 3) and color.dtype == np.uint8
        assert depth.shape == (480, 640) and depth.dtype == np.uint16
        assert cam.depth_scale == pytest.approx(0.001)
        # aligned depth (2000 + k, not the raw 1000 + k), of the same frame set k as the colour
        assert int(depth[0, 0]) - 2000 == int(color[0, 0, 0])
        color, depth = cam.read_rgbd()
        assert int(depth[0, 0]) - 2000 == int(color[0, 0, 0])
        assert cam.async_read_depth().shape == (480, 640)
        assert bus.aligned >= 2
    assert set(bus.started[0]["streams"]) == {"stream.color", "stream.depth"}
    with _camera() as colour_only, pytest.raises(RuntimeError, match="use_depth"):
        colour_only.async_read_depth()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_requests_the_sensor_size_and_turns_clockwise(bus, rotation):
    # the config gives the size after rotation: the 640x480 sensor on its side is 480 wide, 640 high
    size = {"width": 480, "height": 640} if rotation in (90, 270) else {"width": 640, "height": 480}
    cam = _camera(rotation=rotation, use_depth=True, **size)
    with cam:
        color, depth = cam.read_rgbd()
    assert color.shape == (size["height"], size["width"], 3) and depth.shape == color.shape[:2]
    assert bus.started[0]["streams"]["stream.color"][:2] == (640, 480)
    # the fake sensor writes its row in channel 1 and its column in channel 2
    rows, cols = np.mgrid[0:480, 0:640]
    sensor = np.stack([rows % 256, cols % 256], axis=-1).astype(np.uint8)
    clockwise = {
        90: sensor[::-1].transpose(1, 0, 2),
        180: sensor[::-1, ::-1],
        270: sensor[:, ::-1].transpose(1, 0, 2),
    }
    np.testing.assert_array_equal(color[..., 1:], clockwise[rotation])


def test_wrong_size_and_missing_device_fail_at_connect(bus):
    with pytest.raises(
        ConnectionError, match=r"RealSenseCamera\('123456789'\): could not start 800x600@60 .*resolve"
    ):
        _camera(width=800, height=600).connect()
    with pytest.raises(
        ConnectionError,
        match=r"RealSenseCamera\('999'\): not connected \(connected RealSense cameras: 123456789\)",
    ):
        make_camera(CameraConfig("realsense", "999")).connect()


def test_unplugged_camera_reconnects_when_it_comes_back(bus, caplog):
    cam = _camera(reconnect_attempts=5, max_frame_age_s=0.2)
    with cam:
        cam.read()
        bus.unplug(SERIAL)
        deadline = time.monotonic() + 3
        while not cam._thread.reconnecting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam._thread.reconnecting
        time.sleep(0.3)
        with pytest.raises(TimeoutError, match="RealSenseCamera.*old.*reconnecting"):
            cam.async_read()
        bus.plug(SERIAL)
        deadline = time.monotonic() + 5
        while cam._thread.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.read().shape == (480, 640, 3)
        assert cam._thread.reconnects == 1 and len(bus.started) == 2
    assert any("reconnected" in r.getMessage() for r in caplog.records)


def test_unplugged_camera_gone_for_good_names_it(bus):
    cam = _camera(reconnect_attempts=2)
    with cam:
        cam.read()
        bus.unplug(SERIAL)
        deadline = time.monotonic() + 5
        while cam._thread._error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(
            CameraLostError, match=r"RealSenseCamera\('123456789'\): lost .*Frame didn't arrive.* 2 attempt"
        ):
            cam.async_read()
        with pytest.raises(CameraLostError, match="not connected"):
            cam.read_rgbd()


# ------------------------------------------------------------------ the real pyrealsense2


def test_fake_surface_exists_in_the_real_pyrealsense2():
    rs = pytest.importorskip("pyrealsense2")
    if rs.__doc__ and "FAKE" in rs.__doc__:
        pytest.skip("the fake is installed")
    for name, attributes in fakes.SURFACE.items():
        assert hasattr(rs, name), f"pyrealsense2 has no {name}"
        for attribute in attributes:
            assert hasattr(getattr(rs, name), attribute), f"pyrealsense2.{name} has no {attribute}"


def test_real_pyrealsense2_without_a_camera_gives_a_clear_error():
    rs = pytest.importorskip("pyrealsense2")
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected")
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=r"RealSenseCamera\('first device'\): not connected .*none"):
        make_camera(CameraConfig("realsense")).connect()
    assert time.monotonic() - started < 5  # pipeline.start() alone would wait ~15 s
