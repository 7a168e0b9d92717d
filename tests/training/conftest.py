"""A tiny real dataset (parquet, no cameras) written with RobotDataset for the training tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": None},
    "observation.environment_state": {"dtype": "float32", "shape": [4], "names": None},
    "action": {"dtype": "float32", "shape": [4], "names": None},
}


def write_dataset(root, episodes: int = 3, length: int = 24, seed: int = 0):
    from robokit.data import RobotDataset

    ds = RobotDataset.create(root, fps=10, features=FEATURES, use_videos=False)
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        goal = rng.uniform(-1, 1, size=4).astype(np.float32)
        state = rng.uniform(-1, 1, size=4).astype(np.float32)
        for _ in range(length):
            action = state + 0.3 * (goal - state)  # a simple expert: move towards the goal
            ds.add_frame({"observation.state": state.copy(), "observation.environment_state": goal,
                          "action": action.astype(np.float32), "task": "reach the goal"})
            state = action.astype(np.float32)
        ds.save_episode()
    ds.finalize()
    return root


CAMERA_FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": None},
    "observation.images.front": {"dtype": "image", "shape": [32, 32, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [4], "names": None},
}


def write_camera_dataset(root, episodes: int = 2, length: int = 16, seed: int = 0):
    """Random 32x32 frames and a task string per episode: enough to run a ResNet and pass instructions."""
    from robokit.data import RobotDataset

    ds = RobotDataset.create(root, fps=10, features=CAMERA_FEATURES, use_videos=False)
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        for _ in range(length):
            ds.add_frame({"observation.state": rng.normal(size=4).astype(np.float32),
                          "observation.images.front": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                          "action": rng.normal(size=4).astype(np.float32), "task": f"task number {episode}"})
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="session")
def camera_dataset(tmp_path_factory):
    return write_camera_dataset(tmp_path_factory.mktemp("data") / "camera")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "reach")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
