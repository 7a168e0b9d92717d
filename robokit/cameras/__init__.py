"""Cameras: OpenCV (webcams, video files), Intel RealSense (optional), and a synthetic camera."""

from robokit.cameras.camera import Camera, CameraConfig, make_camera, parse_camera_specs

__all__ = ["Camera", "CameraConfig", "make_camera", "parse_camera_specs"]
