"""The robot client: a fixed-rate loop that executes one queued action per tick.

    io = RobotIO(robot)                                          # a connected robokit Robot
    backend = RemoteBackend("127.0.0.1:8080", policy_path, io.features)    # or LocalBackend(policy, io.features)
    client = RobotClient(io, backend, ClientConfig(fps=30, chunk_size_threshold=0.5, aggregate="average"))
    stats = client.run(max_steps=600)
    print(stats.report())

Each tick: merge the chunks that arrived (by timestep, with the aggregation function), send the
current observation when `queue_length / chunk_size <= threshold` (async) or when the queue is
empty and nothing is in flight (sync: the robot waits for each chunk), then execute the action
for the current timestep, or hold still if there is none (an "empty tick").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from robokit.serving.action_queue import ActionQueue
from robokit.serving.aggregation import make_aggregate
from robokit.serving.backends import Arrived, Backend, Dropped, Reconnected
from robokit.serving.clock import SystemClock
from robokit.serving.engine import ObservationData
from robokit.serving.stats import RunStats

logger = logging.getLogger(__name__)


@dataclass
class ClientConfig:
    """How the client runs the control loop and fills its queue."""

    fps: float = 30.0
    """Control rate: one action is executed per tick."""
    mode: Literal["async", "sync"] = "async"
    """async: ask for the next chunk while executing the current one; sync: wait for each chunk (no overlap)."""
    chunk_size_threshold: float = 0.5
    """async: send an observation when queue_length / chunk_size <= this (0 behaves like sync, 1 sends every tick)."""
    aggregate: str = "latest_only"
    """How overlapping actions merge: latest_only, average, weighted_average, conservative, temporal_ensemble."""
    aggregate_alpha: float = 0.7
    """weighted_average: the weight of the newest prediction."""
    ensemble_m: float = 0.01
    """temporal_ensemble: prediction i (0 = oldest) weighs exp(-m * i)."""
    max_in_flight: int = 1
    """Observations awaiting their chunk at once (the server only keeps the newest anyway)."""
    request_timeout_s: float = 10.0
    """An observation with no chunk after this long is given up (and may be sent again)."""
    task: str = ""
    """Language instruction sent with each observation (for policies that take one)."""

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"fps={self.fps}, expected > 0")
        if self.mode not in ("async", "sync"):
            raise ValueError(f"mode={self.mode!r}, expected 'async' or 'sync'")
        if not 0.0 <= self.chunk_size_threshold <= 1.0:
            raise ValueError(f"chunk_size_threshold={self.chunk_size_threshold}, expected 0..1")
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight={self.max_in_flight}, expected >= 1")


class RobotIO:
    """A robokit Robot seen as policy features: observation vectors/frames in, action vectors out.

    A robot that also knows its environment's state (a simulated one: `SimRobot`) gives it as
    `environment_state_feature` + `get_environment_state()`; it is sent as
    `observation.environment_state`, so policies trained on sim demos deploy on the sim robot."""

    def __init__(self, robot):
        from robokit.control.dataset_features import hw_to_dataset_features

        self.robot = robot
        self.features = {**hw_to_dataset_features(robot.observation_features, "observation"),
                         **hw_to_dataset_features(robot.action_features, "action")}
        env_state = getattr(robot, "environment_state_feature", None)
        if env_state is not None:
            self.features["observation.environment_state"] = dict(env_state)
        self.done = False

    def observe(self) -> dict[str, np.ndarray]:
        from robokit.control.dataset_features import build_dataset_frame

        env_key = "observation.environment_state"
        hardware = {k: v for k, v in self.features.items() if k != env_key}
        frame = build_dataset_frame(hardware, self.robot.get_observation(), "observation")
        if env_key in self.features:  # read after get_observation(): the same instant
            frame[env_key] = np.asarray(self.robot.get_environment_state(), dtype=np.float32)
        return frame

    def act(self, action: np.ndarray) -> None:
        from robokit.control.dataset_features import frame_to_action

        self.robot.send_action(frame_to_action(self.features, action))


class RobotClient:
    """The control loop over an IO object (`features`, `observe()`, `act(vector)`, `done`) and a backend."""

    def __init__(self, io, backend: Backend, config: ClientConfig | None = None, clock=None,
                 aggregate: Callable | None = None):
        self.io = io
        self.backend = backend
        self.config = config or ClientConfig()
        self.clock = clock or SystemClock()
        fn = aggregate or make_aggregate(self.config.aggregate, self.config.aggregate_alpha, self.config.ensemble_m)
        self.queue = ActionQueue(fn)
        self.timestep = 0
        self.in_flight: dict[int, float] = {}  # observation timestep -> when it was handed to the backend
        self.stats = RunStats(self.config.fps, chunk_size=backend.chunk_size)
        self._start: float | None = None
        self._next_tick: float | None = None

    @property
    def chunk_size(self) -> int:
        return self.backend.chunk_size

    def queue_length(self) -> int:
        return self.queue.length_from(self.timestep)

    def ready_to_send(self) -> bool:
        if len(self.in_flight) >= self.config.max_in_flight:
            return False
        length = self.queue_length()
        if self.config.mode == "sync":
            return length == 0
        return length / max(1, self.chunk_size) <= self.config.chunk_size_threshold

    # -- one tick ------------------------------------------------------------------------------
    def _collect(self, now: float) -> None:
        for event in self.backend.poll():
            if isinstance(event, Arrived):
                chunk = event.chunk
                if not np.isfinite(chunk.actions).all():  # never send NaN/inf towards motors
                    raise ValueError(f"the chunk predicted from observation {chunk.observation_timestep} holds "
                                     f"non-finite actions (NaN or inf); stopping instead of executing them")
                sent_at = self.in_flight.pop(chunk.observation_timestep, None)
                for t in [t for t in self.in_flight if t < chunk.observation_timestep]:
                    del self.in_flight[t]  # an older observation was replaced on the server
                rtt = (event.received_at - sent_at) * 1e3 if sent_at is not None else None
                self.stats.record_chunk(rtt, chunk.timing_ms)
                self.stats.stale_actions += self.queue.merge(chunk.timesteps, chunk.actions, self.timestep)
            elif isinstance(event, Dropped):
                self.in_flight.pop(event.timestep, None)
                logger.debug("observation %d dropped: %s", event.timestep, event.reason)
            elif isinstance(event, Reconnected):
                self.in_flight.clear()
                self.stats.reconnects += 1
        for t, sent_at in list(self.in_flight.items()):
            if now - sent_at > self.config.request_timeout_s:
                logger.warning("no chunk for observation %d after %.1f s; giving it up", t, now - sent_at)
                del self.in_flight[t]
        if self.backend.error is not None:
            raise self.backend.error

    def step(self) -> np.ndarray | None:
        """One tick without the wait: merge arrivals, maybe send, execute. Returns the executed action."""
        now = self.clock.now()
        if self._start is None:
            self._start = now
        self._collect(now)
        if self.ready_to_send():
            empty = self.queue_length() == 0
            obs = ObservationData(timestep=self.timestep, tensors=self.io.observe(), timestamp=now,
                                  must_process=empty, task=self.config.task)
            self.in_flight[self.timestep] = self.clock.now()
            self.backend.submit(obs)
            self.stats.observations_sent += 1
        self.stats.queue_lengths.append(self.queue_length())
        action = self.queue.pop(self.timestep)
        self.stats.ticks += 1
        if action is None:
            self.stats.empty_ticks += 1
            if self.stats.actions_executed:
                self.stats.empty_ticks_after_start += 1
            return None
        self.io.act(action)
        if self.stats.actions_executed == 0:
            self.stats.first_action_s = self.clock.now() - self._start
        self.stats.actions_executed += 1
        self.timestep += 1
        return action

    def wait(self) -> None:
        """Sleep to the next tick; a late tick restarts the schedule from now."""
        period = 1.0 / self.config.fps
        now = self.clock.now()
        if self._next_tick is None:
            self._next_tick = (self._start if self._start is not None else now) + period
        if now > self._next_tick + 1e-4:
            self.stats.late_ticks += 1
            self._next_tick = now
        else:
            self.clock.sleep_until(self._next_tick)
        self._next_tick += period

    def run(self, max_steps: int | None = None, duration_s: float | None = None,
            until: Callable[[RobotClient], bool] | None = None, progress: bool = False) -> RunStats:
        """Tick until `max_steps` actions were executed, `duration_s` passed, `until(self)` or `io.done`."""
        if max_steps is None and duration_s is None and until is None:
            raise ValueError("run: give max_steps, duration_s or until, or the loop never ends")
        bar = None
        if progress and max_steps:
            from robokit.progress import progress as progress_bar

            bar = progress_bar(total=max_steps, desc="actions", unit="step")
        logger.info("control loop running at %g fps (%s, %d actions per chunk)", self.config.fps, self.config.mode,
                    self.chunk_size)
        try:
            while True:
                done_before = self.stats.actions_executed
                self.step()
                if bar is not None and self.stats.actions_executed > done_before:
                    bar.update(1)
                if max_steps is not None and self.stats.actions_executed >= max_steps:
                    break
                if duration_s is not None and self.clock.now() - self._start >= duration_s:
                    break
                if getattr(self.io, "done", False) or (until is not None and until(self)):
                    break
                self.wait()
        finally:
            if bar is not None:
                bar.close()
            now = self.clock.now()
            self.stats.elapsed_s = now - (self._start if self._start is not None else now)
        return self.stats

    def reset(self) -> None:
        """A new episode: clear the queue and timesteps here and on the backend."""
        self.backend.reset()
        self.queue.clear()
        self.in_flight.clear()
        self.timestep = 0

    def close(self) -> None:
        self.backend.close()

