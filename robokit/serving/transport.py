"""The client side of the gRPC protocol: `RemoteBackend` (see backends.py for the interface).

A sender thread encodes the newest observation (JPEG for camera frames when asked), cuts it into
parts and streams it to the server; a receiver thread reads the session's action stream. When
the connection drops (server restarted, network lost) the receiver sets the session up again
for up to `reconnect_timeout_s`, then gives up with a `ServerUnavailableError` that says so.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path

import grpc
import numpy as np

from robokit.serving import robokit_serving_pb2 as pb
from robokit.serving import robokit_serving_pb2_grpc as pb_grpc
from robokit.serving.backends import Arrived, Backend, Dropped, Reconnected
from robokit.serving.clock import SystemClock
from robokit.serving.engine import ChunkResult, ObservationData
from robokit.serving.server import AUTH_KEY, SESSION_KEY, MiB
from robokit.serving.tensors import decode_tensor, encode_tensor, map_tensors

logger = logging.getLogger(__name__)

# Errors that reconnecting cannot fix: the request itself is wrong.
FATAL_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAUTHENTICATED,
               grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INTERNAL)


class ServerUnavailableError(ConnectionError):
    """No policy server answers at the address (or it went away and did not come back)."""


class ServerError(RuntimeError):
    """The server rejected a call: wrong token, unknown policy, features that do not match, ..."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code


def _rpc_error(err: grpc.RpcError, call: str, address: str) -> Exception:
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ServerUnavailableError(f"{call} to the policy server at {address} failed: {code.name}: {details}")
    return ServerError(f"{call} rejected by the policy server at {address}: {code.name if code else '?'}: {details}", code)


def is_camera(name: str, array: np.ndarray) -> bool:
    return ".images." in name and array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3


def observation_message(obs: ObservationData, jpeg_quality: int | None = None) -> pb.Observation:
    """An ObservationData as a protobuf message; camera frames JPEG-encoded when `jpeg_quality` is set."""
    def encode(name, value):
        array = np.asarray(value)
        return encode_tensor(array, jpeg_quality if is_camera(name, array) else None)

    tensors = map_tensors(encode, obs.tensors, parallel=jpeg_quality is not None)
    return pb.Observation(timestep=int(obs.timestep), timestamp=float(obs.timestamp),
                          must_process=bool(obs.must_process), task=obs.task, tensors=tensors)


def split_parts(data: bytes, part_bytes: int) -> list[pb.ObservationPart]:
    """A serialized observation as ordered parts of at most `part_bytes` bytes."""
    if part_bytes < 1:
        raise ValueError(f"split_parts: part_bytes={part_bytes}, expected >= 1")
    pieces = [data[i: i + part_bytes] for i in range(0, len(data), part_bytes)] or [b""]
    return [pb.ObservationPart(data=piece, index=i, total=len(pieces)) for i, piece in enumerate(pieces)]


class RemoteBackend(Backend):
    """A session on a policy server (`robokit serve`)."""

    def __init__(self, address: str, policy_path: str, features: dict[str, dict], actions_per_chunk: int = 0, *,
                 policy_type: str = "", device: str = "", revision: str = "", token: str | None = None,
                 tls_ca: str | None = None, jpeg_quality: int | None = None, part_mb: float = 2.0,
                 max_message_mb: float = 8.0, connect_timeout_s: float = 10.0, reconnect_timeout_s: float = 10.0,
                 setup_timeout_s: float = 300.0, client_name: str = "robokit-client", clock=None):
        if ":" not in address:
            raise ValueError(f"server address {address!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
        if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality={jpeg_quality}, expected 1..100 (or None for raw frames)")
        self.address = address
        self.clock = clock or SystemClock()
        self.jpeg_quality = jpeg_quality
        self.part_bytes = int(part_mb * MiB)
        self.reconnect_timeout_s = reconnect_timeout_s
        self._setup = pb.PolicySetup(policy_path=str(policy_path), policy_type=policy_type,
                                     features_json=json.dumps(features), actions_per_chunk=int(actions_per_chunk),
                                     device=device, revision=revision, client_name=client_name)
        self._tls_ca = Path(tls_ca).read_bytes() if tls_ca else None
        self._auth = [(AUTH_KEY, f"Bearer {token}")] if token else []
        self._options = [("grpc.max_receive_message_length", int(max_message_mb * MiB)),
                         ("grpc.max_send_message_length", int(max_message_mb * MiB))]
        self._setup_timeout_s = setup_timeout_s
        self._inbox: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._send_cond = threading.Condition()
        self._pending: ObservationData | None = None
        self._closing = threading.Event()
        self.reconnects = 0
        self._channel = None
        self._connect(connect_timeout_s)
        self._receiver = threading.Thread(target=self._receive_loop, name="robokit-recv", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="robokit-send", daemon=True)
        self._receiver.start()
        self._sender.start()

    # -- connection ----------------------------------------------------------------------------
    def _connect(self, timeout: float) -> None:
        if self._tls_ca is not None:
            channel = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(self._tls_ca), self._options)
        else:
            channel = grpc.insecure_channel(self.address, self._options)
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            channel.close()
            raise ServerUnavailableError(f"no policy server answers at {self.address} within {timeout:g} s "
                                         "(is `robokit serve` running there, with the same TLS setting?)") from None
        stub = pb_grpc.PolicyServerStub(channel)
        try:
            reply = stub.Setup(self._setup, metadata=self._auth, timeout=self._setup_timeout_s)
        except grpc.RpcError as err:
            channel.close()
            raise _rpc_error(err, "Setup", self.address) from None
        metadata = [*self._auth, (SESSION_KEY, reply.session_id)]
        stream = stub.StreamActions(pb.StreamActionsRequest(), metadata=metadata)
        with self._lock:
            old = self._channel
            self._channel, self._stub, self._metadata, self._stream = channel, stub, metadata, stream
            self.setup_reply = reply
        if old is not None:
            old.close()
        self.session_id = reply.session_id
        self.chunk_size = reply.chunk_size
        self.action_dim = reply.action_dim
        self.policy_type = reply.policy_type
        logger.info("connected to %s: session %s, %s policy, %d actions per chunk%s", self.address,
                    reply.session_id[:8], reply.policy_type, reply.chunk_size, " (cached)" if reply.from_cache else "")

    def _reconnect(self, reason: str) -> bool:
        logger.warning("lost the policy server at %s (%s); reconnecting for up to %g s", self.address, reason,
                       self.reconnect_timeout_s)
        deadline = time.monotonic() + self.reconnect_timeout_s
        attempts = 0
        while not self._closing.is_set():
            attempts += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self._connect(min(remaining, 2.0))
            except ServerUnavailableError:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            except ServerError as err:
                self.error = err
                return False
            self.reconnects += 1
            self._inbox.put(Reconnected(attempts))
            return True
        if not self._closing.is_set():
            self.error = ServerUnavailableError(
                f"lost the policy server at {self.address} ({reason}) and could not reconnect within "
                f"{self.reconnect_timeout_s:g} s")
        return False

    # -- threads -------------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                stream = self._stream
            try:
                for msg in stream:
                    received_at = self.clock.now()
                    actions = np.array(decode_tensor(msg.actions, "actions"), dtype=np.float32)
                    timing = {"queue": msg.timing.queue_ms, "preprocess": msg.timing.preprocess_ms,
                              "inference": msg.timing.inference_ms, "postprocess": msg.timing.postprocess_ms}
                    chunk = ChunkResult(msg.observation_timestep, np.asarray(msg.timesteps, dtype=np.int64), actions,
                                        timing, msg.observation_timestamp)
                    self._inbox.put(Arrived(chunk, received_at))
                reason = "the server ended the action stream"
            except grpc.RpcError as err:
                if self._closing.is_set():
                    return
                if err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAUTHENTICATED):
                    self.error = _rpc_error(err, "StreamActions", self.address)
                    return
                reason = f"{err.code().name}: {err.details()}"
            except Exception as err:  # a malformed chunk: the server is not speaking our protocol
                self.error = ServerError(f"bad action chunk from {self.address}: {err}")
                return
            if self._closing.is_set() or not self._reconnect(reason):
                return

    def _send_loop(self) -> None:
        while not self._closing.is_set():
            with self._send_cond:
                while self._pending is None and not self._closing.is_set():
                    self._send_cond.wait(0.5)
                obs, self._pending = self._pending, None
            if obs is None:
                continue
            with self._lock:
                stub, metadata = self._stub, self._metadata
            try:
                data = observation_message(obs, self.jpeg_quality).SerializeToString()
                ack = stub.SendObservation(iter(split_parts(data, self.part_bytes)), metadata=metadata, timeout=30.0)
            except grpc.RpcError as err:
                if err.code() in FATAL_CODES:
                    self.error = _rpc_error(err, f"SendObservation (timestep {obs.timestep})", self.address)
                self._inbox.put(Dropped(obs.timestep, f"send failed: {err.code().name}"))
                continue
            except Exception as err:
                self.error = err
                continue
            if ack.status == pb.ObservationAck.SKIPPED:
                self._inbox.put(Dropped(obs.timestep, "skipped by the server: timestep already predicted"))

    # -- Backend -------------------------------------------------------------------------------
    def submit(self, obs: ObservationData) -> None:
        with self._send_cond:
            if self._pending is not None:  # only the newest observation is worth sending
                self._inbox.put(Dropped(self._pending.timestep, "replaced before it was sent"))
            self._pending = obs
            self._send_cond.notify()

    def poll(self) -> list:
        events = []
        while True:
            try:
                events.append(self._inbox.get_nowait())
            except queue.Empty:
                return events

    def health(self, timeout: float = 5.0) -> pb.HealthReply:
        with self._lock:
            stub = self._stub
        return stub.Health(pb.HealthRequest(), timeout=timeout)

    def reset(self) -> None:
        with self._lock:
            stub, metadata = self._stub, self._metadata
        try:
            stub.Reset(pb.ResetRequest(), metadata=metadata, timeout=10.0)
        except grpc.RpcError as err:
            raise _rpc_error(err, "Reset", self.address) from None
        self.poll()

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        with self._send_cond:
            self._send_cond.notify_all()
        with self._lock:
            stub, metadata, channel = self._stub, self._metadata, self._channel
        try:
            stub.Close(pb.CloseRequest(), metadata=metadata, timeout=2.0)
        except grpc.RpcError:
            pass  # the server may already be gone
        channel.close()
        self._receiver.join(timeout=5)
        self._sender.join(timeout=5)


def check_health(address: str, timeout: float = 5.0, tls_ca: str | None = None) -> pb.HealthReply:
    """The server's Health reply (raises ServerUnavailableError when none answers)."""
    if tls_ca:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(Path(tls_ca).read_bytes()))
    else:
        channel = grpc.insecure_channel(address)
    try:
        return pb_grpc.PolicyServerStub(channel).Health(pb.HealthRequest(), timeout=timeout, wait_for_ready=True)
    except grpc.RpcError as err:
        raise _rpc_error(err, "Health", address) from None
    finally:
        channel.close()
