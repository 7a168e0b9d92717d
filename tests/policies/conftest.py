"""Factories for tiny policy inputs: features, stats and batches built in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def make_features(cams=("front",), state_dim=6, env_dim=0, action_dim=6, hw=(48, 64)) -> dict:
    features = {}
    for cam in cams:
        features[f"observation.images.{cam}"] = {"dtype": "video", "shape": [hw[0], hw[1], 3], "names": ["height", "width", "channels"]}
    if state_dim:
        features["observation.state"] = {"dtype": "float32", "shape": [state_dim], "names": None}
    if env_dim:
        features["observation.environment_state"] = {"dtype": "float32", "shape": [env_dim], "names": None}
    features["action"] = {"dtype": "float32", "shape": [action_dim], "names": None}
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    return features


def make_stats(features: dict, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    stats = {}
    for name, spec in features.items():
        shape = (3, 1, 1) if spec["dtype"] in ("image", "video") else tuple(spec["shape"])
        mean = rng.normal(size=shape).astype(np.float32)
        std = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
        stats[name] = {
            "mean": mean, "std": std, "min": mean - 2 * std, "max": mean + 2 * std,
            "q01": mean - 1.8 * std, "q99": mean + 1.8 * std,
        }
    return stats


def make_observation(features: dict, batch: int = 2, steps: int | None = None, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    obs = {}
    for name, spec in features.items():
        if not name.startswith("observation."):
            continue
        if spec["dtype"] in ("image", "video"):
            h, w, c = spec["shape"]
            shape = (c, h, w)
            value = lambda s: torch.rand(s, generator=g)  # noqa: E731
        else:
            shape = tuple(spec["shape"])
            value = lambda s: torch.randn(s, generator=g)  # noqa: E731
        lead = (batch,) if steps is None else (batch, steps)
        obs[name] = value(lead + shape)
    return obs


def make_batch(features: dict, horizon: int, batch: int = 2, obs_steps: int | None = None, seed: int = 0) -> dict:
    out = make_observation(features, batch, obs_steps, seed)
    g = torch.Generator().manual_seed(seed + 1)
    out["action"] = torch.randn(batch, horizon, features["action"]["shape"][0], generator=g)
    pad = torch.zeros(batch, horizon, dtype=torch.bool)
    pad[0, -2:] = True
    out["action_is_pad"] = pad
    return out


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)
