"""Scripted experts as policy-like objects: `reset()`, `select_action(obs) -> action`.

An expert sees what a policy sees: a dict of observations keyed by robokit feature names,
batched (leading dim B, as a vector env returns them) or not. It keeps one episode script per
batch row, built from the first observation after `reset()`, and returns numpy actions of
shape (B, action_dim) (or (action_dim,) for an unbatched observation).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class EpisodeScript(abc.ABC):
    """The expert for one episode of one env: built from the first observation, then stepped."""

    @abc.abstractmethod
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The action for this (unbatched) observation."""


class ScriptedExpert(abc.ABC):
    """Batches `EpisodeScript`s; subclasses implement `new_episode(obs)`."""

    is_expert = True
    reads_images = False
    """Evaluation renders no camera for it (videos still come from env.render())."""

    def __init__(self) -> None:
        self._scripts: list[EpisodeScript | None] = []

    @abc.abstractmethod
    def new_episode(self, obs: dict[str, np.ndarray]) -> EpisodeScript:
        """A script for the episode whose first (unbatched) observation is `obs`."""

    def reset(self) -> None:
        self._scripts = []

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        state = np.asarray(obs["observation.state"])
        batched = state.ndim == 2
        size = state.shape[0] if batched else 1
        if len(self._scripts) != size:
            self._scripts = [None] * size
        actions = []
        for i in range(size):
            row = {k: np.asarray(v)[i] if batched else np.asarray(v) for k, v in obs.items()
                   if not k.startswith("observation.images.")}
            if self._scripts[i] is None:
                self._scripts[i] = self.new_episode(row)
            actions.append(np.asarray(self._scripts[i].act(row), dtype=np.float32))
        return np.stack(actions) if batched else actions[0]


class RandomPolicy:
    """Uniformly random actions from an action space (a baseline through the same eval path)."""

    reads_images = False

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int | None = None):
        self.low, self.high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(f"RandomPolicy: low {self.low.shape} and high {self.high.shape} must be equal 1-D shapes")
        self._rng = np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to forget: the generator runs on, so that successive episodes differ."""

    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        state = np.asarray(obs["observation.state"])
        shape = (state.shape[0], self.low.size) if state.ndim == 2 else (self.low.size,)
        return self._rng.uniform(self.low, self.high, size=shape).astype(np.float32)
