"""Inference for one client: observation arrays -> policy tensors -> a chunk of timestamped actions.

The server and the client's local (in-process) mode share this module, so the only difference
between running a policy remotely and locally is the transport:

    engine = InferenceEngine(policy, client_features, actions_per_chunk=20)
    session = InferenceSession(engine)                 # a worker thread; `inline=True` runs in the caller
    session.submit(ObservationData(timestep=0, tensors={...}))
    result = session.outbox.get()                      # ChunkResult(timesteps, actions (n, A), timing)

A session keeps only the newest waiting observation (an older one still waiting is dropped) and
skips an observation whose timestep it already predicted unless it is marked `must_process`.

Values are checked at this boundary (`InferenceEngine.check`): vectors must be finite (a NaN
state would come back as an all-NaN chunk), camera frames are uint8 in 0..255 or float in
[0, 1] (the dataset convention); anything else is an `ObservationError` naming the feature.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class ObservationError(ValueError):
    """An observation that does not match what the client declared or the policy expects."""


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_frame_values(name: str, frame: np.ndarray, where: str = "") -> None:
    """A camera frame is uint8 (0..255) or float in [0, 1]; other dtypes and ranges are refused."""
    if frame.dtype == np.uint8:
        return
    if frame.dtype.kind != "f":
        raise ObservationError(f"{where}{name!r} is a {frame.dtype} frame; expected uint8 (0..255) or float in [0, 1]")
    if frame.size:
        low, high = float(np.min(frame)), float(np.max(frame))
        if not (0.0 <= low and high <= 1.0):  # NaN fails both comparisons
            raise ObservationError(f"{where}{name!r} is a {frame.dtype} frame with values in [{low:g}, {high:g}]; "
                                   "float frames must be in [0, 1] (or send uint8 0..255)")


def check_vector_values(name: str, vector: np.ndarray, where: str = "") -> None:
    """A state vector holds finite numbers that float32 can represent."""
    if vector.dtype.kind not in "fiub":
        raise ObservationError(f"{where}{name!r} has dtype {vector.dtype}; expected a float or integer vector")
    if vector.dtype.kind == "f":
        bad = ~np.isfinite(vector) | (np.abs(vector) > FLOAT32_MAX)
        if bad.any():
            index = int(np.flatnonzero(bad.reshape(-1))[0])
            raise ObservationError(f"{where}{name!r}[{index}] = {float(vector.reshape(-1)[index]):g} "
                                   f"({int(bad.sum())} of {vector.size} values); expected finite float32 values")


@dataclass
class ObservationData:
    """One observation as arrays, keyed by feature name (images uint8 (H, W, 3), vectors float)."""

    timestep: int
    tensors: dict[str, np.ndarray]
    timestamp: float = 0.0
    """Client clock (s) when it was captured."""
    must_process: bool = False
    task: str = ""
    received_at: float = field(default_factory=time.perf_counter)
    """Server clock (s) when it was fully received and decoded."""
    decode_ms: float = 0.0
    """Time spent turning bytes (or JPEG) into these arrays."""


@dataclass
class ChunkResult:
    """A predicted chunk: `actions[i]` is for `timesteps[i]`."""

    observation_timestep: int
    timesteps: np.ndarray  # (n,) int64
    actions: np.ndarray  # (n, action_dim) float32
    timing_ms: dict[str, float]  # queue, preprocess, inference, postprocess
    observation_timestamp: float = 0.0
    completed_at: float = 0.0
    """perf_counter() when the chunk was ready."""


def chunk_length(policy) -> int:
    """Actions one `predict_action_chunk` call returns (Diffusion: n_action_steps; ACT: chunk_size)."""
    if hasattr(policy, "chunk_length"):
        return int(policy.chunk_length)
    config = policy.config
    if hasattr(config, "horizon"):
        return int(config.n_action_steps)
    if hasattr(config, "chunk_size"):
        return int(config.chunk_size)
    return int(getattr(config, "n_action_steps", 1))


class InferenceEngine:
    """A policy plus the client's features: checks them once, then converts and predicts."""

    def __init__(self, policy, features: dict[str, dict], actions_per_chunk: int = 0):
        from robokit.policies.config import FeatureType

        self.policy = policy
        self.features = dict(features)
        self.full_chunk = chunk_length(policy)
        if actions_per_chunk < 0:
            raise ValueError(f"actions_per_chunk={actions_per_chunk}; expected 0 (the whole chunk) or a positive count")
        self.chunk_size = min(actions_per_chunk, self.full_chunk) if actions_per_chunk else self.full_chunk
        self.action_dim = int(policy.output_features["action"].shape[0])
        self.images: list[str] = []
        self.vectors: list[str] = []
        for name, feature in policy.input_features.items():
            if name not in self.features:
                raise ObservationError(f"the policy needs {name!r} {list(feature.shape)}; the client's features "
                                       f"have {sorted(k for k in self.features if k.startswith('observation'))}")
            declared = tuple(int(s) for s in self.features[name]["shape"])
            if feature.type is FeatureType.VISUAL:
                expected = (feature.shape[1], feature.shape[2], feature.shape[0])  # policy (C, H, W) -> frame (H, W, C)
                self.images.append(name)
            else:
                expected = tuple(feature.shape)
                self.vectors.append(name)
            if declared != expected:
                raise ObservationError(f"feature {name!r}: the client declares shape {list(declared)}, "
                                       f"the policy expects {list(expected)}")
        action = self.features.get("action")
        if action is not None and int(action["shape"][0]) != self.action_dim:
            raise ObservationError(f"feature 'action': the client declares {action['shape'][0]} values, "
                                   f"the policy predicts {self.action_dim}")
        self.accepts_timestep = bool(getattr(policy, "accepts_timestep", False))

    @property
    def inputs(self) -> list[str]:
        """The observation features the policy reads (cameras first)."""
        return [*self.images, *self.vectors]

    def check(self, obs: ObservationData) -> None:
        """Raise ObservationError if `obs` lacks a policy input, has the wrong shape, a non-finite value,
        or a frame outside uint8 0..255 / float [0, 1]."""
        for name in (*self.images, *self.vectors):
            if name not in obs.tensors:
                raise ObservationError(f"observation {obs.timestep} has no {name!r}; it has {sorted(obs.tensors)}")
            value = np.asarray(obs.tensors[name])
            shape = tuple(value.shape)
            declared = tuple(int(s) for s in self.features[name]["shape"])
            if shape != declared:
                raise ObservationError(f"observation {obs.timestep}: {name!r} has shape {list(shape)}, "
                                       f"declared {list(declared)}")
            where = f"observation {obs.timestep}: "
            if name in self.images:
                check_frame_values(name, value, where)
            else:
                check_vector_values(name, value, where)

    def to_policy_inputs(self, obs: ObservationData) -> dict[str, Any]:
        """Arrays -> batched float tensors on the policy's device; images (1, C, H, W) in [0, 1]
        (uint8 frames divided by 255, float frames, already in [0, 1], as they are)."""
        import torch

        device = self.policy.device if hasattr(self.policy, "device") else torch.device("cpu")
        out: dict[str, Any] = {}
        for name in self.images:
            with warnings.catch_warnings():  # a read-only view of the message's bytes; it is only read here
                warnings.simplefilter("ignore", UserWarning)
                frame = torch.from_numpy(np.ascontiguousarray(obs.tensors[name])).to(device)
            # (H, W, C) -> (1, C, H, W). contiguous() before the float conversion: converting the
            # permuted view directly is ~30x slower on CPU (a strided, channels-last float copy).
            image = frame.permute(2, 0, 1).contiguous().unsqueeze(0).to(torch.float32)
            out[name] = image.div_(255.0) if frame.dtype == torch.uint8 else image
        for name in self.vectors:
            out[name] = torch.from_numpy(np.asarray(obs.tensors[name], dtype=np.float32).copy()).to(device).unsqueeze(0)
        if obs.task:
            out["task"] = [obs.task]
        return out

    def predict(self, obs: ObservationData, picked_at: float) -> ChunkResult:
        t0 = time.perf_counter()
        inputs = self.to_policy_inputs(obs)
        t1 = time.perf_counter()
        kwargs = {"timestep": obs.timestep} if self.accepts_timestep else {}
        chunk = self.policy.predict_action_chunk(inputs, **kwargs)  # (1, n, A)
        t2 = time.perf_counter()
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().to("cpu").numpy()
        actions = np.ascontiguousarray(np.asarray(chunk, dtype=np.float32)[0, : self.chunk_size])  # (n, A)
        timesteps = obs.timestep + np.arange(actions.shape[0], dtype=np.int64)
        t3 = time.perf_counter()
        timing = {"queue": (picked_at - obs.received_at) * 1e3, "preprocess": obs.decode_ms + (t1 - t0) * 1e3,
                  "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return ChunkResult(obs.timestep, timesteps, actions, timing, obs.timestamp, completed_at=t3)

    def reset(self) -> None:
        if hasattr(self.policy, "reset"):
            self.policy.reset()


class SessionClosed(RuntimeError):
    """The session was closed (by the client, a reset of the server, or an error)."""


class InferenceSession:
    """Newest-observation slot + one worker: the per-client state of a server, or of local mode."""

    def __init__(self, engine: InferenceEngine, inline: bool = False, name: str = "session", lock=None):
        self.engine = engine
        self.name = name
        self.inline = inline
        self.outbox: queue.Queue[ChunkResult | BaseException] = queue.Queue()
        self.predicted: deque[int] = deque(maxlen=4096)
        self._predicted_set: set[int] = set()
        self._pending: ObservationData | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._model_lock = lock or threading.Lock()  # sessions that share one policy run it one at a time
        self.counts = {"received": 0, "skipped": 0, "replaced": 0, "predicted": 0}
        self._worker: threading.Thread | None = None
        if not inline:
            self._worker = threading.Thread(target=self._run, name=f"infer-{name}", daemon=True)
            self._worker.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, obs: ObservationData) -> tuple[bool, bool]:
        """Queue `obs` -> (queued, replaced an older waiting one). Not queued: its timestep was already predicted."""
        self.engine.check(obs)
        with self._cond:
            if self._closed:
                raise SessionClosed(f"session {self.name} is closed")
            self.counts["received"] += 1
            if obs.timestep in self._predicted_set and not obs.must_process:
                self.counts["skipped"] += 1
                return False, False
            replaced = self._pending is not None
            if replaced:
                self.counts["replaced"] += 1
            self._pending = obs
            self._cond.notify_all()
        if self.inline:
            self._process_pending()
        return True, replaced

    def reset(self) -> None:
        """Forget what was predicted and any waiting observation; reset the policy's state."""
        with self._cond:
            self._pending = None
            self.predicted.clear()
            self._predicted_set.clear()
        with self._model_lock:
            self.engine.reset()
        while True:  # chunks of the old episode must not reach the new one
            try:
                self.outbox.get_nowait()
            except queue.Empty:
                break

    def close(self, timeout: float = 60.0) -> None:
        """Stop the worker, waiting (up to `timeout` s) for a prediction in progress to end: a process
        that exits while a thread is inside the policy's native code aborts."""
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        self.outbox.put(SessionClosed(f"session {self.name} is closed"))
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
            if worker.is_alive():
                logger.warning("%s: a prediction still runs %.0f s after close", self.name, timeout)

    def _take(self, timeout: float | None) -> ObservationData | None:
        with self._cond:
            if self._pending is None and not self._closed:
                self._cond.wait(timeout)
            obs, self._pending = self._pending, None
            return obs

    def _process_pending(self) -> None:
        obs = self._take(0)
        if obs is None:
            return
        picked_at = time.perf_counter()
        try:
            with self._model_lock:
                result = self.engine.predict(obs, picked_at)
        except Exception as err:  # a policy failure is reported to this client only
            logger.exception("%s: prediction for timestep %d failed", self.name, obs.timestep)
            self.outbox.put(RuntimeError(f"prediction for timestep {obs.timestep} failed: {type(err).__name__}: {err}"))
            return
        with self._cond:
            if len(self.predicted) == self.predicted.maxlen:
                self._predicted_set.discard(self.predicted[0])
            self.predicted.append(obs.timestep)
            self._predicted_set.add(obs.timestep)
            self.counts["predicted"] += 1
        self.outbox.put(result)

    def _run(self) -> None:
        while not self._closed:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait(0.5)
            if self._closed:
                return
            self._process_pending()
