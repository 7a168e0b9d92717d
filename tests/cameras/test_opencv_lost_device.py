"""A lost OpenCV device, for real: cv2.VideoCapture (FFmpeg backend) reads a YUV4MPEG stream from a
named pipe fed by a writer thread; stopping the writer is the camera going away (end of stream),
removing the pipe is it not coming back."""

import logging
import os
import threading
import time

import numpy as np
import pytest

from robokit.cameras import CameraConfig, make_camera
from robokit.cameras.threaded import CameraLostError

cv2 = pytest.importorskip("cv2")

H, W = 48, 64
RED, GREEN = (220, 20, 20), (20, 220, 20)


class PipeWriter:
    """Writes a y4m stream of one solid colour into a FIFO at ~fps until stopped (or until it stalls)."""

    def __init__(self, path, colour, fps=60):
        self.path, self.fps = path, fps
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[:] = colour
        self.frame = b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
        self.stop = threading.Event()
        self.stall = threading.Event()  # keep the pipe open but send nothing
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            with open(self.path, "wb") as pipe:  # blocks until the camera opens the pipe
                pipe.write(f"YUV4MPEG2 W{W} H{H} F{self.fps}:1 Ip A1:1 C420jpeg\n".encode())
                while not self.stop.is_set():
                    if not self.stall.is_set():
                        pipe.write(self.frame)
                        pipe.flush()
                    time.sleep(1 / self.fps)
        except (BrokenPipeError, FileNotFoundError):
            pass

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


def _wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def _colour_is(cam, colour):
    try:
        frame = cam.async_read(timeout_s=0.5)
    except TimeoutError:
        return False
    return np.abs(frame.reshape(-1, 3).mean(0) - colour).max() < 30


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "camera.y4m"
    os.mkfifo(path)
    yield path
    # A failed test may leave a capture thread blocked opening the pipe for reading (OpenCV holds
    # a process-wide lock while FFmpeg opens a source): let it through to end-of-stream.
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader waiting, or the pipe is gone


def test_camera_reconnects_when_the_stream_comes_back(fifo, caplog):
    caplog.set_level(logging.WARNING, logger="robokit.cameras.threaded")
    first = PipeWriter(fifo, RED)
    cam = make_camera(CameraConfig("opencv", str(fifo), width=W, height=H, fps=60, max_frame_age_s=0.3))
    cam.connect()
    second = None
    try:
        assert _colour_is(cam, RED)
        first.close()  # the device goes away: end of stream
        assert _wait_for(lambda: cam._thread.reconnecting), "the camera did not notice the lost stream"
        time.sleep(0.4)
        # no frame for longer than max_frame_age_s: an error, not the last red frame again
        with pytest.raises(TimeoutError, match=r"camera OpenCVCamera\(.*camera.y4m'\).*old.*reconnecting"):
            cam.async_read()
        second = PipeWriter(fifo, GREEN)  # the device is back
        assert _wait_for(lambda: _colour_is(cam, GREEN)), "frames did not resume after the reconnect"
        assert cam.read().shape == (H, W, 3)
        assert cam._thread.reconnects == 1
        messages = [r.getMessage() for r in caplog.records]
        assert any("lost" in m and "reconnecting" in m for m in messages)
        assert any("reconnected" in m for m in messages)
    finally:
        if second is not None:
            second.close()
        cam.disconnect()
    assert not cam.is_connected


def test_camera_gone_for_good_raises_naming_it(fifo, caplog):
    caplog.set_level(logging.WARNING, logger="robokit.cameras.threaded")
    writer = PipeWriter(fifo, RED)
    cam = make_camera(CameraConfig("opencv", str(fifo), width=W, height=H, fps=60, reconnect_attempts=2))
    with cam:
        assert _colour_is(cam, RED)
        os.unlink(fifo)  # unplugged and not coming back
        writer.close()
        assert _wait_for(lambda: cam._thread._error is not None)
        with pytest.raises(CameraLostError, match=r"camera OpenCVCamera\(.*camera.y4m'\): lost .* 2 attempt"):
            cam.async_read()
        with pytest.raises(CameraLostError, match="could not open"):
            cam.read()  # every later read fails the same way, none returns an old frame
    attempts = [r for r in caplog.records if "reconnect attempt" in r.getMessage()]
    assert len(attempts) == 2


def test_no_reconnect_fails_at_once(fifo):
    writer = PipeWriter(fifo, RED)
    cam = make_camera(CameraConfig("opencv", str(fifo), width=W, height=H, fps=60, reconnect_attempts=0))
    with cam:
        assert _colour_is(cam, RED)
        writer.close()
        assert _wait_for(lambda: cam._thread._error is not None, timeout_s=3)
        with pytest.raises(CameraLostError, match="capture failed: .*read failed"):
            cam.async_read()


def test_stalled_device_is_not_read_as_fresh_frames(fifo):
    writer = PipeWriter(fifo, RED)
    cam = make_camera(CameraConfig("opencv", str(fifo), width=W, height=H, fps=60, max_frame_age_s=0.3))
    cam.connect()
    try:
        assert _colour_is(cam, RED)
        writer.stall.set()  # open but silent: the capture thread blocks in read()
        time.sleep(0.5)
        with pytest.raises(TimeoutError, match="old.*the device stalled"):
            cam.async_read()
        with pytest.raises(TimeoutError, match="no new frame"):
            cam.read()
        writer.stall.clear()  # it speaks again: fresh frames, no error
        assert _wait_for(lambda: _colour_is(cam, RED))
    finally:
        writer.close()
        cam.disconnect()
