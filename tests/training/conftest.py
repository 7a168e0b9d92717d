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


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "reach")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
