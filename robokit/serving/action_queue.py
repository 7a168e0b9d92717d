"""The client's queue of actions by timestep, merging each arriving chunk into it.

    queue = ActionQueue(make_aggregate("temporal_ensemble", m=0.01))
    queue.merge(timesteps, actions, current_timestep=t)    # stale actions (< t) are dropped
    action = queue.pop(t)                                  # the action for timestep t, or None

The timestep counts executed actions: action `t` is the one executed after `t` others. A chunk
predicted from the observation at timestep `t0` holds actions for `t0, t0 + 1, ...`; by the time it
arrives the robot may have executed some of them from an older chunk, so those are dropped.
"""

from __future__ import annotations

import numpy as np

from robokit.serving.aggregation import AggregateFn, latest_only


class ActionQueue:
    def __init__(self, aggregate: AggregateFn = latest_only):
        self.aggregate = aggregate
        self._actions: dict[int, np.ndarray] = {}
        self._merged: dict[int, int] = {}  # how many predictions each queued action combines

    def __len__(self) -> int:
        return len(self._actions)

    def length_from(self, timestep: int) -> int:
        """Queued actions for `timestep` and later."""
        return sum(1 for t in self._actions if t >= timestep)

    def merge(self, timesteps, actions, current_timestep: int) -> int:
        """Merge a chunk; returns how many of its actions were stale (for timesteps already executed)."""
        actions = np.asarray(actions, dtype=np.float32)
        timesteps = np.asarray(timesteps, dtype=np.int64)
        if actions.ndim != 2 or actions.shape[0] != timesteps.shape[0]:
            raise ValueError(f"ActionQueue.merge: actions {actions.shape} and timesteps {timesteps.shape} "
                             "must be (n, action_dim) and (n,)")
        stale = 0
        for t, new in zip(timesteps.tolist(), actions):
            if t < current_timestep:
                stale += 1
                continue
            if t in self._actions:
                n = self._merged[t]
                self._actions[t] = np.asarray(self.aggregate(self._actions[t], new, n), dtype=np.float32)
                self._merged[t] = n + 1
            else:
                self._actions[t] = new.copy()
                self._merged[t] = 1
        return stale

    def pop(self, timestep: int) -> np.ndarray | None:
        """The action for `timestep` (removed), or None when none is queued; older entries are discarded."""
        for t in [t for t in self._actions if t < timestep]:
            del self._actions[t], self._merged[t]
        self._merged.pop(timestep, None)
        return self._actions.pop(timestep, None)

    def peek(self, timestep: int) -> np.ndarray | None:
        return self._actions.get(timestep)

    def clear(self) -> None:
        self._actions.clear()
        self._merged.clear()
