"""Where the client's observations go and its chunks come from: in-process, or a policy server.

Both backends take observations without blocking the control loop (`submit`) and hand back
what has arrived since the last call (`poll`), so the client's queue logic is the same for both:

    backend = LocalBackend(policy, features)                       # in this process
    backend = RemoteBackend("127.0.0.1:8080", "path/to/policy", features)   # over gRPC
    backend.submit(ObservationData(timestep=t, tensors=frame))
    for event in backend.poll(): ...                               # Arrived / Dropped / Reconnected

`LocalBackend(..., inline=True, latency_s=0.2, clock=FakeClock())` predicts at once in the caller
and releases each chunk `latency_s` later on the given clock: deterministic tests of timing logic.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass

from robokit.serving.clock import SystemClock
from robokit.serving.engine import ChunkResult, InferenceEngine, InferenceSession, ObservationData

logger = logging.getLogger(__name__)


@dataclass
class Arrived:
    """A chunk reached the client at `received_at` (the backend's clock)."""

    chunk: ChunkResult
    received_at: float


@dataclass
class Dropped:
    """An observation will get no chunk (skipped by the server, or its send failed)."""

    timestep: int
    reason: str


@dataclass
class Reconnected:
    """The connection was lost and set up again: observations in flight are gone."""

    attempts: int


class Backend:
    chunk_size: int = 0
    action_dim: int = 0
    error: BaseException | None = None
    """A fatal error seen by a background thread; the client raises it."""

    def submit(self, obs: ObservationData) -> None:
        raise NotImplementedError

    def poll(self) -> list:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalBackend(Backend):
    """The policy in this process: the server's session logic without the network."""

    def __init__(self, policy, features: dict[str, dict], actions_per_chunk: int = 0, *, inline: bool = False,
                 latency_s: float = 0.0, clock=None):
        if isinstance(policy, str):
            from robokit.policies import Policy

            policy = Policy.from_pretrained(policy)
        if latency_s < 0:
            raise ValueError(f"LocalBackend: latency_s={latency_s}, expected >= 0")
        self.clock = clock or SystemClock()
        self.inline = inline
        self.latency_s = latency_s
        self.engine = InferenceEngine(policy, features, actions_per_chunk)
        self.session = InferenceSession(self.engine, inline=inline, name="local")
        self.chunk_size = self.engine.chunk_size
        self.action_dim = self.engine.action_dim
        self._delayed: list[tuple[float, ChunkResult]] = []
        self._events: list = []
        self._submitted_at: dict[int, float] = {}

    def submit(self, obs: ObservationData) -> None:
        self._submitted_at[obs.timestep] = self.clock.now()
        queued, _ = self.session.submit(obs)
        if not queued:
            self._events.append(Dropped(obs.timestep, "skipped: timestep already predicted"))

    def poll(self) -> list:
        while True:
            try:
                item = self.session.outbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                self.error = item
                break
            if self.inline:
                ready = self._submitted_at.get(item.observation_timestep, self.clock.now()) + self.latency_s
            else:
                ready = item.completed_at + self.latency_s
            self._delayed.append((ready, item))
        now = self.clock.now()
        due = [item for item in self._delayed if item[0] <= now]
        self._delayed = [item for item in self._delayed if item[0] > now]
        events, self._events = self._events, []
        events += [Arrived(chunk, ready) for ready, chunk in sorted(due, key=lambda x: x[0])]
        return events

    def reset(self) -> None:
        self.session.reset()
        self._delayed.clear()
        self._events.clear()

    def close(self) -> None:
        self.session.close()


def __getattr__(name: str):
    if name in ("RemoteBackend", "ServerUnavailableError", "ServerError"):
        from robokit.serving import transport

        return getattr(transport, name)
    raise AttributeError(f"module 'robokit.serving.backends' has no attribute {name!r}")

