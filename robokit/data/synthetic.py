"""Synthetic episodes (smooth moving images + joint trajectories) for the demo, tests and benchmarks."""

from __future__ import annotations

import numpy as np

JOINTS = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos", "gripper.pos"]


def synthetic_features(
    cameras: tuple[str, ...] = ("front", "wrist"), height: int = 96, width: int = 128, state_dim: int = 6, use_videos: bool = True
) -> dict[str, dict]:
    names = JOINTS if state_dim == len(JOINTS) else [f"joint_{i}.pos" for i in range(state_dim)]
    features = {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": names},
        "action": {"dtype": "float32", "shape": [state_dim], "names": names},
    }
    for cam in cameras:
        features[f"observation.images.{cam}"] = {
            "dtype": "video" if use_videos else "image",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        }
    return features


class SyntheticEpisode:
    """Frame `i` of a seeded synthetic episode: a smooth joint trajectory and a bright disc moving
    over a colour gradient in every camera, so that video compresses like real footage."""

    def __init__(self, features: dict[str, dict], seed: int = 0):
        self.features = features
        rng = np.random.default_rng(seed)
        self.state_dim = features["observation.state"]["shape"][0]
        self.phase = rng.uniform(0, 2 * np.pi, size=self.state_dim)
        self.freq = rng.uniform(0.2, 1.0, size=self.state_dim)
        self.amplitude = rng.uniform(10, 60, size=self.state_dim)
        self.cameras = {k: v["shape"] for k, v in features.items() if v["dtype"] in ("video", "image")}
        self._background = {}
        for k, (h, w, _) in self.cameras.items():
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            tint = rng.uniform(0.3, 1.0, size=3)
            self._background[k] = np.stack([(xx / w) * 160 * tint[0], (yy / h) * 160 * tint[1], np.full_like(xx, 80 * tint[2])], -1)
            self._background[k + ":grid"] = (yy, xx)

    def state(self, t: float) -> np.ndarray:
        return (self.amplitude * np.sin(self.freq * 2 * np.pi * t + self.phase)).astype(np.float32)

    def frame(self, i: int, fps: int, task: str = "move the arm") -> dict:
        t = i / fps
        out = {"observation.state": self.state(t), "action": self.state(t + 1 / fps), "task": task}
        for k, (h, w, _) in self.cameras.items():
            yy, xx = self._background[k + ":grid"]
            cy, cx = h * (0.5 + 0.3 * np.sin(t * 1.3)), w * (0.5 + 0.3 * np.cos(t * 0.9))
            disc = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.08 * min(h, w)) ** 2))[..., None]
            out[k] = np.clip(self._background[k] + 120 * disc, 0, 255).astype(np.uint8)
        return out


def record_synthetic_dataset(root, lengths=(12, 7, 15), fps: int = 30, use_videos: bool = True, height: int = 32,
                             width: int = 48, codec: str = "av1", tasks=("pick up the red cube", "place the cube in the bin"),
                             **create_kwargs) -> dict:
    """Record seeded synthetic episodes of the given lengths; returns what was given to add_frame,
    stacked per key (plus episode_index and frame_index), for comparing with what is read back."""
    from robokit.data.dataset import RobotDataset

    features = synthetic_features(height=height, width=width, use_videos=use_videos)
    ds = RobotDataset.create(root, fps=fps, features=features, robot_type="synthetic_arm", video_codec=codec, **create_kwargs)
    given: dict[str, list] = {}
    for ep, length in enumerate(lengths):
        episode = SyntheticEpisode(features, seed=ep)
        for i in range(length):
            frame = episode.frame(i, fps, task=tasks[ep % len(tasks)])
            ds.add_frame(frame)
            for key, value in frame.items():
                given.setdefault(key, []).append(value)
            given.setdefault("episode_index", []).append(ep)
            given.setdefault("frame_index", []).append(i)
        ds.save_episode()
    ds.finalize()
    return {k: (np.stack(v) if k != "task" else v) for k, v in given.items()}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (inf when identical)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
