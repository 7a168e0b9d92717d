"""Factories for the serving tests: tiny saved policies, a server on a free port, an array robot."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

pytest.importorskip("grpc")
torch = pytest.importorskip("torch")

from robokit.policies import Policy, make_config

TINY_ACT = dict(chunk_size=10, n_action_steps=10, dim_model=16, n_heads=2, dim_feedforward=32, n_encoder_layers=1,
                n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4, use_vae=False)


def make_features(state_dim=4, env_dim=4, action_dim=4, cams: dict[str, tuple[int, int]] | None = None) -> dict:
    feats = {"observation.state": {"dtype": "float32", "shape": [state_dim], "names": [f"j{i}.pos" for i in range(state_dim)]}}
    if env_dim:
        feats["observation.environment_state"] = {"dtype": "float32", "shape": [env_dim], "names": None}
    for cam, (h, w) in (cams or {}).items():
        feats[f"observation.images.{cam}"] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    feats["action"] = {"dtype": "float32", "shape": [action_dim], "names": [f"j{i}.pos" for i in range(action_dim)]}
    return feats


def make_stats(features: dict) -> dict:
    rng = np.random.default_rng(0)
    stats = {}
    for name, spec in features.items():
        shape = (3, 1, 1) if spec["dtype"] == "video" else tuple(spec["shape"])
        stats[name] = {"mean": rng.normal(size=shape).astype(np.float32),
                       "std": rng.uniform(0.5, 2.0, size=shape).astype(np.float32)}
    return stats


def save_tiny_act(directory, features, **overrides):
    torch.manual_seed(0)
    policy = Policy.build(make_config("act", **{**TINY_ACT, **overrides}), features, make_stats(features))
    policy.save_pretrained(directory)
    return directory


def observation_at(features: dict, timestep: int) -> dict[str, np.ndarray]:
    """A deterministic observation for `timestep` (vectors float32, frames uint8)."""
    rng = np.random.default_rng(timestep)
    out = {}
    for name, spec in features.items():
        if not name.startswith("observation."):
            continue
        if spec["dtype"] == "video":
            out[name] = rng.integers(0, 256, size=spec["shape"], dtype=np.uint8)
        else:
            out[name] = rng.normal(size=spec["shape"]).astype(np.float32)
    return out


class ArrayIO:
    """A robot as arrays: observations depend on the number of actions executed; actions are recorded."""

    def __init__(self, features: dict):
        self.features = features
        self.actions: list[np.ndarray] = []
        self.done = False
        self._lock = threading.Lock()

    def observe(self) -> dict[str, np.ndarray]:
        return observation_at(self.features, len(self.actions))

    def act(self, action: np.ndarray) -> None:
        with self._lock:
            self.actions.append(np.array(action))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def features():
    return make_features()


@pytest.fixture(scope="session")
def act_path(tmp_path_factory, features):
    return save_tiny_act(tmp_path_factory.mktemp("policies") / "act", features)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(1)


@pytest.fixture
def server():
    from robokit.serving.server import PolicyServer, ServeConfig

    srv = PolicyServer(ServeConfig(port=0, max_message_mb=1.0, max_observation_mb=2.0)).start()
    yield srv
    srv.stop(grace=0)
