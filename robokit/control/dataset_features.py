"""Turn a robot's hardware features into dataset features, and one observation into a frame.

A robot describes itself with "hardware features" (`{"shoulder_pan.pos": float, "front": (480, 640, 3)}`);
a dataset wants `{name: {"dtype", "shape", "names"}}` with the joints gathered into one vector:

    hw_to_dataset_features(robot.observation_features, "observation")
      -> {"observation.state": {"dtype": "float32", "shape": [6], "names": ["shoulder_pan.pos", ...]},
          "observation.images.front": {"dtype": "video", "shape": [480, 640, 3],
                                       "names": ["height", "width", "channels"]}}
    hw_to_dataset_features(robot.action_features, "action")
      -> {"action": {"dtype": "float32", "shape": [6], "names": [...]}}
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SCALAR_TYPES = (float, int, bool)


def _is_scalar(ftype: Any) -> bool:
    return ftype in _SCALAR_TYPES or (isinstance(ftype, type) and issubclass(ftype, np.number))


def _vector_key(prefix: str) -> str:
    return "action" if prefix == "action" else f"{prefix}.state"


def hw_to_dataset_features(features: dict[str, Any], prefix: str, use_video: bool = True) -> dict[str, dict]:
    """Dataset features for hardware `features` under `prefix` ("observation" or "action")."""
    if prefix not in ("observation", "action"):
        raise ValueError(f"hw_to_dataset_features: prefix={prefix!r}, expected 'observation' or 'action'")
    joints = [key for key, ftype in features.items() if _is_scalar(ftype)]
    cameras = {key: ftype for key, ftype in features.items() if isinstance(ftype, tuple)}
    unknown = set(features) - set(joints) - set(cameras)
    if unknown:
        bad = sorted(unknown)[0]
        raise ValueError(
            f"hw_to_dataset_features: feature {bad!r} has type {features[bad]!r}, "
            "expected float/int/bool (a joint) or a (height, width, channels) tuple (a camera)"
        )
    out: dict[str, dict] = {}
    if joints:
        out[_vector_key(prefix)] = {"dtype": "float32", "shape": [len(joints)], "names": joints}
    if cameras and prefix == "action":
        raise ValueError(
            f"hw_to_dataset_features: action features hold cameras {sorted(cameras)}; actions are joints only"
        )
    for key, shape in cameras.items():
        if len(shape) != 3:
            raise ValueError(
                f"hw_to_dataset_features: camera {key!r} has shape {shape}, expected (height, width, channels)"
            )
        out[f"{prefix}.images.{key}"] = {
            "dtype": "video" if use_video else "image",
            "shape": [int(s) for s in shape],
            "names": ["height", "width", "channels"],
        }
    return out


def build_dataset_frame(
    ds_features: dict[str, dict], values: dict[str, Any], prefix: str
) -> dict[str, np.ndarray]:
    """Pick the dataset features under `prefix` out of a hardware `values` dict.

    `values` is what `robot.get_observation()` / `send_action()` returns. Vectors are float32 arrays
    ordered by the feature's `names`; images are uint8 arrays (H, W, 3).
    """
    frame: dict[str, np.ndarray] = {}
    for key, ft in ds_features.items():
        if key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            continue
        if not (key == prefix or key.startswith(prefix + ".")):
            continue
        if ft["dtype"] in ("video", "image"):
            cam = key.removeprefix(f"{prefix}.images.")
            if cam not in values:
                raise KeyError(
                    f"build_dataset_frame: camera {cam!r} (for {key!r}) missing from values; have {sorted(values)}"
                )
            frame[key] = np.asarray(values[cam], dtype=np.uint8)
        elif ft["dtype"] in ("float32", "float64"):
            missing = [name for name in ft["names"] if name not in values]
            if missing:
                raise KeyError(
                    f"build_dataset_frame: {key!r} needs {missing}, missing from values; have {sorted(values)}"
                )
            frame[key] = np.array([values[name] for name in ft["names"]], dtype=ft["dtype"])
    return frame


def frame_to_action(ds_features: dict[str, dict], action: np.ndarray | Any) -> dict[str, float]:
    """Inverse of `build_dataset_frame` for the action vector: `{"<joint>.pos": value}`."""
    names = ds_features["action"]["names"]
    vec = np.asarray(action, dtype=np.float64).reshape(-1)
    if vec.shape[0] != len(names):
        raise ValueError(
            f"frame_to_action: action has {vec.shape[0]} values, the dataset declares {len(names)} ({names})"
        )
    return {name: float(v) for name, v in zip(names, vec)}
