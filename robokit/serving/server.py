"""The policy server: loads policies on request and predicts action chunks for each client.

    robokit serve --host 127.0.0.1 --port 8080 [--token SECRET] [--tls-cert cert.pem --tls-key key.pem]

    server = PolicyServer(ServeConfig(port=0)).start()   # port 0: a free port, see server.port
    ...
    server.stop()

One session per client (opened by `Setup`): its own newest-observation slot and worker thread
(`engine.InferenceSession`), so clients are served independently; policies are loaded once and
shared (a policy with an observation history gets a copy per session). A malformed or oversized
message fails that call only, with INVALID_ARGUMENT or RESOURCE_EXHAUSTED: bytes that are not a
message (handlers.py), non-finite values and frames outside uint8 / float [0, 1] (engine.py).
One client host holds at most `max_sessions_per_client` sessions, and a session whose action
stream is not opened within `stream_wait_s` is closed, so no client can lock the others out.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError

import robokit
from robokit.serving import robokit_serving_pb2 as pb
from robokit.serving.config import ServeConfig
from robokit.serving.engine import (
    InferenceEngine,
    InferenceSession,
    ObservationData,
    ObservationError,
    SessionClosed,
)
from robokit.serving.handlers import add_servicer
from robokit.serving.tensors import TensorDecodeError, decode_tensor, encode_tensor, map_tensors

logger = logging.getLogger(__name__)

SESSION_KEY = "x-robokit-session"
AUTH_KEY = "authorization"
MiB = 1024 * 1024


class PolicyCache:
    """Policies by (path, revision, device), loaded once (`loader(path, revision, device)`).

    With the default loader a path is first resolved to its policy folder (`resolve_pretrained_dir`),
    so `outputs/train` and `outputs/train/checkpoints/last` share one entry, and a training output
    that gained a checkpoint since loads the new one."""

    def __init__(self, loader: Callable[[str, str | None, str], Any] | None = None):
        self.loader = loader or _load_pretrained
        self.resolve = _resolve_pretrained if loader is None else (lambda path, revision: path)
        self._entries: dict[tuple, tuple[Any, float, threading.Lock]] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    def get(self, path: str, revision: str | None, device: str) -> tuple[Any, float, bool, threading.Lock]:
        """(policy, load_ms, from_cache, the lock that serializes calls into it)."""
        path = self.resolve(path, revision)
        key = (path, revision or "", device)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # two clients asking for one policy at once load it once
            if key in self._entries:
                policy, load_ms, model_lock = self._entries[key]
                return policy, load_ms, True, model_lock
            t0 = time.perf_counter()
            policy = self.loader(path, revision, device)
            load_ms = (time.perf_counter() - t0) * 1e3
            logger.info("loaded policy %s on %s in %.0f ms", path, device, load_ms)
            self._entries[key] = (policy, load_ms, threading.Lock())
            return policy, load_ms, False, self._entries[key][2]

    def names(self) -> list[str]:
        return [f"{path}@{device}" for path, _, device in self._entries]


def _resolve_pretrained(path: str, revision: str | None) -> str:
    from robokit.policies.policy import resolve_pretrained_dir

    return str(resolve_pretrained_dir(path, revision))


def _load_pretrained(path: str, revision: str | None, device: str):
    from robokit.policies import Policy

    return Policy.from_pretrained(path, revision=revision, device=device)


@dataclass
class _Session:
    id: str
    client: str
    session: InferenceSession
    last_seen: float
    host: str = ""
    created: float = 0.0
    streaming: bool = False


def parse_features_json(text: str) -> dict[str, dict]:
    """The client's features {name: {"dtype", "shape", "names"}}; ValueError naming what is wrong."""
    features = json.loads(text or "{}")
    if not isinstance(features, dict) or not all(isinstance(v, dict) and "shape" in v for v in features.values()):
        raise ValueError('expected {name: {"dtype", "shape", "names"}}')
    for name, feature in features.items():
        shape = feature["shape"]
        if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise ValueError(f"feature {name!r} has shape {shape!r}; expected a list of non-negative integers")
        if name == "action" and len(shape) != 1:
            raise ValueError(f"feature 'action' has shape {shape!r}; expected [action_dim]")
    return features


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer ("ipv4:10.0.0.5:51234" -> "10.0.0.5", "ipv6:[::1]:5" -> "::1")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer

class PolicyServicer:
    def __init__(self, config: ServeConfig, cache: PolicyCache):
        self.config = config
        self.cache = cache
        self.started = time.time()
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    # -- sessions ------------------------------------------------------------------------------
    def _session(self, context) -> _Session:
        sid = dict(context.invocation_metadata()).get(SESSION_KEY, "")
        with self._lock:
            entry = self._sessions.get(sid)
        if entry is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"unknown session {sid!r} (metadata {SESSION_KEY!r}); call Setup first")
        entry.last_seen = time.monotonic()
        return entry

    def _drop(self, sid: str) -> None:
        with self._lock:
            entry = self._sessions.pop(sid, None)
        if entry is not None:
            entry.session.close()
            logger.info("session %s (%s) closed; %d open", sid[:8], entry.client, len(self._sessions))

    def _reap_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle = [sid for sid, e in self._sessions.items()
                    if not e.streaming and (now - e.last_seen > self.config.session_idle_s
                                            or now - e.created > self.config.stream_wait_s)]
        for sid in idle:
            self._drop(sid)

    def close_all(self) -> None:
        for sid in list(self._sessions):
            self._drop(sid)

    # -- RPCs ----------------------------------------------------------------------------------
    def Health(self, request, context):
        return pb.HealthReply(status="SERVING", version=robokit.__version__, sessions=len(self._sessions),
                              loaded_policies=self.cache.names(), uptime_s=time.time() - self.started)

    def Setup(self, request: pb.PolicySetup, context):
        self._reap_idle()
        if not request.policy_path:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Setup: policy_path is empty; expected a folder or a hub repo id")
        try:
            features = parse_features_json(request.features_json)
        except ValueError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Setup: features_json is not valid: {err}")
        host = peer_host(context.peer())
        with self._lock:
            if len(self._sessions) >= self.config.max_sessions:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"Setup: the server already serves {self.config.max_sessions} clients (--max-sessions)")
            held = sum(e.host == host for e in self._sessions.values())
            if held >= self.config.max_sessions_per_client:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"Setup: {host} already holds {held} sessions (--max-sessions-per-client "
                              f"{self.config.max_sessions_per_client}); close one first")
        device = request.device or self.config.device
        try:
            policy, load_ms, cached, model_lock = self.cache.get(request.policy_path, request.revision or None, device)
        except FileNotFoundError as err:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Setup: {err}")
        except ConnectionError as err:  # a hub id while the server is offline
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"Setup: on the server: {err}")
        except Exception as err:
            logger.exception("loading %s failed", request.policy_path)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Setup: cannot load policy {request.policy_path!r}: {type(err).__name__}: {err}")
        policy_type = getattr(getattr(policy, "config", None), "type", "") or type(policy).__name__
        if request.policy_type and request.policy_type != policy_type:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Setup: policy_type={request.policy_type!r} but {request.policy_path!r} holds a {policy_type!r} policy")
        n_obs_steps = int(getattr(getattr(policy, "config", None), "n_obs_steps", 1))
        if n_obs_steps > 1:  # the policy keeps an observation history: each client needs its own
            policy, model_lock = copy.deepcopy(policy), threading.Lock()
        try:
            engine = InferenceEngine(policy, features, int(request.actions_per_chunk))
        except (ObservationError, ValueError) as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Setup: {err}")
        sid = uuid.uuid4().hex
        name = f"{request.client_name or context.peer()}/{sid[:8]}"
        now = time.monotonic()
        entry = _Session(sid, request.client_name or context.peer(), InferenceSession(engine, name=name, lock=model_lock),
                         now, host=host, created=now)
        with self._lock:
            self._sessions[sid] = entry
        logger.info("session %s for %s: %s (%s), %d actions per chunk; %d open", sid[:8], entry.client,
                    request.policy_path, policy_type, engine.chunk_size, len(self._sessions))
        inputs = {k: f.to_json() for k, f in policy.input_features.items()} if hasattr(policy, "input_features") else {}
        return pb.SetupReply(session_id=sid, policy_type=policy_type, chunk_size=engine.chunk_size,
                             action_dim=engine.action_dim, input_features_json=json.dumps(inputs),
                             load_ms=load_ms, from_cache=cached, n_obs_steps=n_obs_steps)

    def SendObservation(self, request_iterator, context):
        entry = self._session(context)
        data = self._join_parts(request_iterator, context)
        t0 = time.perf_counter()
        message = pb.Observation()
        try:
            message.ParseFromString(data)
        except DecodeError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"SendObservation: the parts do not form an Observation ({err})")
        try:
            # Only the policy's inputs are decoded, and only at the shape declared at Setup: a tensor
            # declaring a huge frame (a tiny JPEG of 20000 x 20000 pixels) is refused before decoding.
            engine = entry.session.engine
            inputs = {name: t for name, t in message.tensors.items() if name in engine.inputs}
            for name, t in inputs.items():
                declared = [int(s) for s in engine.features[name]["shape"]]
                if list(t.shape) != declared:
                    raise TensorDecodeError(f"observation {message.timestep}: {name!r} has shape {list(t.shape)}, "
                                            f"declared {declared}")
            jpeg = sum(t.encoding == pb.JPEG for t in inputs.values()) > 1
            tensors = map_tensors(lambda name, t: decode_tensor(t, name), inputs, parallel=jpeg)
        except TensorDecodeError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"SendObservation: {err}")
        now = time.perf_counter()
        obs = ObservationData(timestep=message.timestep, tensors=tensors, timestamp=message.timestamp,
                              must_process=message.must_process, task=message.task, received_at=now,
                              decode_ms=(now - t0) * 1e3)
        try:
            queued, replaced = entry.session.submit(obs)
        except ObservationError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"SendObservation: {err}")
        except SessionClosed as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"SendObservation: {err}")
        status = pb.ObservationAck.QUEUED if queued else pb.ObservationAck.SKIPPED
        return pb.ObservationAck(status=status, timestep=message.timestep, replaced=int(replaced))

    def _join_parts(self, request_iterator, context) -> bytes:
        limit = int(self.config.max_observation_mb * MiB)
        pieces: list[bytes] = []
        size, total = 0, None
        for part in request_iterator:
            if total is None:
                total = part.total
                if total < 1:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"SendObservation: part total={total}; expected >= 1")
            if part.total != total or part.index != len(pieces):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"SendObservation: got part {part.index}/{part.total}; expected part {len(pieces)}/{total}")
            size += len(part.data)
            if size > limit:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"SendObservation: observation exceeds {self.config.max_observation_mb:g} MiB "
                              "(--max-observation-mb)")
            pieces.append(part.data)
        if total is None or len(pieces) != total:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"SendObservation: received {len(pieces)} of {total or 0} parts")
        return b"".join(pieces)

    def StreamActions(self, request, context):
        entry = self._session(context)
        with self._lock:
            if entry.streaming:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, "StreamActions: this session already has an action stream")
            entry.streaming = True
        # The client going away (killed, network lost) ends the stream: its session goes with it.
        context.add_callback(lambda: self._drop(entry.id))
        outbox = entry.session.outbox
        while context.is_active():
            try:
                item = outbox.get(timeout=0.25)
            except queue.Empty:
                continue
            if isinstance(item, SessionClosed):
                return
            if isinstance(item, BaseException):
                context.abort(grpc.StatusCode.INTERNAL, str(item))
            t0 = time.perf_counter()
            actions = encode_tensor(item.actions)
            timing = dict(item.timing_ms)
            timing["postprocess"] += (time.perf_counter() - t0) * 1e3
            yield pb.ActionChunk(
                observation_timestep=item.observation_timestep, timesteps=item.timesteps.tolist(), actions=actions,
                timing=pb.ServerTiming(queue_ms=timing["queue"], preprocess_ms=timing["preprocess"],
                                       inference_ms=timing["inference"], postprocess_ms=timing["postprocess"]),
                observation_timestamp=item.observation_timestamp)

    def Reset(self, request, context):
        self._session(context).session.reset()
        return pb.ResetReply()

    def Close(self, request, context):
        self._drop(self._session(context).id)
        return pb.CloseReply()


class _TokenCheck(grpc.ServerInterceptor):
    """Rejects calls without `authorization: Bearer <token>` (Health is always allowed)."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method.endswith("/Health"):
            return handler
        given = dict(details.invocation_metadata).get(AUTH_KEY, "")
        if hmac.compare_digest(given.encode(), self._expected):
            return handler
        message = "missing shared token" if not given else "wrong shared token"

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, f"{message} (metadata '{AUTH_KEY}: Bearer <token>')")

        kind = (handler.request_streaming, handler.response_streaming)
        make = {(False, False): grpc.unary_unary_rpc_method_handler, (True, False): grpc.stream_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
        return make[kind](deny, request_deserializer=handler.request_deserializer,
                          response_serializer=handler.response_serializer)


class PolicyServer:
    """A gRPC server around `PolicyServicer`; `start()` returns self, `port` is the bound port."""

    def __init__(self, config: ServeConfig, loader: Callable[[str, str | None, str], Any] | None = None):
        for name in ("max_sessions", "max_sessions_per_client"):
            if getattr(config, name) < 1:
                raise ValueError(f"serve: --{name.replace('_', '-')} {getattr(config, name)}; expected >= 1")
        if bool(config.tls_cert) != bool(config.tls_key):
            raise ValueError(f"serve: TLS needs both --tls-cert and --tls-key; got cert={config.tls_cert!r}, "
                             f"key={config.tls_key!r}")
        self.config = config
        self.servicer = PolicyServicer(config, PolicyCache(loader))
        interceptors = [_TokenCheck(config.token)] if config.token else []
        limit = int(config.max_message_mb * MiB)
        # Each client holds one worker thread for its action stream, plus short calls.
        workers = 2 * config.max_sessions + 8
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="robokit-serve"),
            interceptors=interceptors,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit),
                     ("grpc.so_reuseport", 0)],
        )
        add_servicer(self.servicer, self._server)
        address = f"{config.host}:{config.port}"
        if config.tls_cert:
            credentials = grpc.ssl_server_credentials(
                [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())])
            self.port = self._server.add_secure_port(address, credentials)
        else:
            self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"serve: cannot listen on {address} (in use, or not an address of this machine)")

    def start(self) -> PolicyServer:
        self._server.start()
        scheme = "TLS" if self.config.tls_cert else "plaintext"
        auth = "token required" if self.config.token else "no token"
        logger.info("policy server on %s:%d (%s, %s)", self.config.host, self.port, scheme, auth)
        return self

    def stop(self, grace: float | None = 1.0) -> None:
        self.servicer.close_all()
        self._server.stop(grace).wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or `timeout` s pass); True when it stopped."""
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> PolicyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
