import numpy as np
import pytest

from robokit.cameras import CameraConfig, make_camera, parse_camera_specs
from robokit.cameras.synthetic import synthetic_frame


def test_synthetic_camera_moves_and_is_deterministic():
    cam = make_camera(CameraConfig("synthetic", width=64, height=48, fps=100))
    with cam:
        first = cam.async_read()
        frames = [cam.read() for _ in range(3)]
        assert first.shape == (48, 64, 3) and first.dtype == np.uint8
        assert not np.array_equal(frames[0], frames[1])  # the pattern moves every frame
    np.testing.assert_array_equal(synthetic_frame(5, 48, 64), synthetic_frame(5, 48, 64))
    rotated = make_camera(CameraConfig("synthetic", width=48, height=64, rotation=90))
    with rotated:
        assert rotated.read().shape == (64, 48, 3)


def test_camera_specs():
    cams = parse_camera_specs("front=synthetic:320x240@15, wrist=opencv:/dev/video2")
    assert cams["front"] == CameraConfig("synthetic", "0", 320, 240, 15)
    assert cams["wrist"].index_or_path == "/dev/video2" and cams["wrist"].width == 640
    with pytest.raises(ValueError, match="type 'webcam'"):
        parse_camera_specs("front=webcam")
    with pytest.raises(ValueError, match="rotation=45"):
        CameraConfig(rotation=45)


def _write_video(path, n=10, h=48, w=64):
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (w, h))
    assert writer.isOpened()
    for k in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[..., 2] = 200  # BGR: red
        frame[:, : (k + 1) * 4, 1] = 255
        writer.write(frame)
    writer.release()


def test_opencv_camera_on_a_video_file(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path)
    cam = make_camera(CameraConfig("opencv", str(path), width=64, height=48, fps=60))
    with cam:
        frame = cam.async_read(timeout_s=2)
        assert frame.shape == (48, 64, 3)
        assert frame[..., 0].mean() > 150 and frame[..., 2].mean() < 60  # RGB order: the red channel is first
        frames = [cam.read() for _ in range(12)]  # loops at the end of the file
        assert len({int(f[..., 1].sum()) for f in frames}) > 3
    with pytest.raises(ConnectionError, match="64x48"):
        make_camera(CameraConfig("opencv", str(path), width=640, height=480)).connect()
    with pytest.raises(ConnectionError, match="could not open"):
        make_camera(CameraConfig("opencv", str(tmp_path / "missing.avi"))).connect()
