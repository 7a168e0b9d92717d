"""A real gRPC server on 127.0.0.1 and clients in this process: results, limits, errors, token, TLS."""

import json
import shutil
import subprocess
import time

import grpc
import numpy as np
import pytest

from robokit.policies import Policy
from robokit.serving import robokit_serving_pb2 as pb
from robokit.serving import robokit_serving_pb2_grpc as pb_grpc
from robokit.serving.client import ClientConfig, RobotClient
from robokit.serving.engine import InferenceEngine, ObservationData
from robokit.serving.server import SESSION_KEY, PolicyServer, ServeConfig
from robokit.serving.tensors import decode_tensor, encode_tensor
from robokit.serving.transport import (
    RemoteBackend,
    ServerError,
    ServerUnavailableError,
    check_health,
    observation_message,
    split_parts,
)

from .conftest import ArrayIO, observation_at, save_tiny_act


def address(server) -> str:
    return f"127.0.0.1:{server.port}"


class RawSession:
    """Protocol-level access: Setup, then send parts by hand and read the action stream."""

    def __init__(self, server, policy_path, features, token=None):
        self.channel = grpc.insecure_channel(address(server))
        self.stub = pb_grpc.PolicyServerStub(self.channel)
        auth = [("authorization", f"Bearer {token}")] if token else []
        reply = self.stub.Setup(pb.PolicySetup(policy_path=str(policy_path), features_json=json.dumps(features)),
                                metadata=auth, timeout=60)
        self.reply = reply
        self.metadata = [*auth, (SESSION_KEY, reply.session_id)]
        self.stream = self.stub.StreamActions(pb.StreamActionsRequest(), metadata=self.metadata)

    def send_parts(self, parts):
        return self.stub.SendObservation(iter(parts), metadata=self.metadata, timeout=30)

    def send(self, features, timestep, must_process=False):
        obs = ObservationData(timestep=timestep, tensors=observation_at(features, timestep), must_process=must_process)
        return self.send_parts(split_parts(observation_message(obs).SerializeToString(), 64 * 1024))

    def next_chunk(self):
        return next(self.stream)

    def close(self):
        self.channel.close()


def test_chunks_over_grpc_equal_local_predictions(server, act_path, features):
    raw = RawSession(server, act_path, features)
    try:
        assert raw.reply.chunk_size == 10 and raw.reply.action_dim == 4 and raw.reply.policy_type == "act"
        ack = raw.send(features, 0)
        assert ack.status == pb.ObservationAck.QUEUED
        msg = raw.next_chunk()
        assert list(msg.timesteps) == list(range(10)) and msg.observation_timestep == 0
        assert msg.actions.encoding == pb.RAW and list(msg.actions.shape) == [10, 4]
        assert msg.timing.inference_ms > 0 and msg.timing.preprocess_ms > 0
        engine = InferenceEngine(Policy.from_pretrained(act_path), features)
        expected = engine.predict(ObservationData(0, observation_at(features, 0)), 0.0).actions
        np.testing.assert_allclose(decode_tensor(msg.actions), expected, rtol=1e-5, atol=1e-6)
        # the same timestep again adds nothing: skipped without running the model, unless must_process
        assert raw.send(features, 0).status == pb.ObservationAck.SKIPPED
        assert raw.send(features, 0, must_process=True).status == pb.ObservationAck.QUEUED
        assert raw.next_chunk().observation_timestep == 0
    finally:
        raw.close()


def test_health_answers_without_a_model(server, act_path, features):
    health = check_health(address(server))
    assert health.status == "SERVING" and health.sessions == 0 and list(health.loaded_policies) == []
    backend = RemoteBackend(address(server), str(act_path), features)
    try:
        health = check_health(address(server))
        assert health.sessions == 1 and list(health.loaded_policies) == [f"{act_path}@cpu"]
    finally:
        backend.close()
    deadline = time.monotonic() + 5
    while check_health(address(server)).sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert check_health(address(server)).sessions == 0


def test_client_loop_over_grpc(server, act_path, features):
    io = ArrayIO(features)
    with RemoteBackend(address(server), str(act_path), features, actions_per_chunk=6) as backend:
        assert backend.chunk_size == 6
        stats = RobotClient(io, backend, ClientConfig(fps=50, chunk_size_threshold=0.5)).run(max_steps=20)
    assert stats.actions_executed == 20 and stats.chunks_received >= 3
    assert len(stats.round_trip_ms) == stats.chunks_received
    assert all(r > i for r, i in zip(stats.round_trip_ms, stats.server_ms["inference"]))
    summary = stats.summary()
    assert summary["server_ms"]["inference"]["p50"] > 0 and summary["overhead_ms"]["p50"] > 0


def test_malformed_messages_fail_only_that_call(server, act_path, features):
    raw = RawSession(server, act_path, features)
    try:
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts([pb.ObservationPart(data=b"\xff\xff\xff garbage", index=0, total=1)])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "do not form an Observation" in err.value.details()

        obs = observation_message(ObservationData(0, observation_at(features, 0)))
        obs.tensors["observation.state"].data = b"\0" * 3
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts(split_parts(obs.SerializeToString(), 1 << 20))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "observation.state: 3 bytes for dtype float32 shape [4]; expected 16" in err.value.details()

        del obs.tensors["observation.environment_state"]
        obs.tensors["observation.state"].CopyFrom(encode_tensor(np.zeros(4, np.float32)))
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts(split_parts(obs.SerializeToString(), 1 << 20))
        assert "has no 'observation.environment_state'" in err.value.details()

        parts = split_parts(observation_message(ObservationData(1, observation_at(features, 1))).SerializeToString(), 16)
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts([parts[1], parts[0], *parts[2:]])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "expected part 0" in err.value.details()

        with pytest.raises(grpc.RpcError) as err:
            raw.stub.SendObservation(iter([]), metadata=[(SESSION_KEY, "nope")], timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "call Setup first" in err.value.details()

        # the session (and the server) still work
        assert raw.send(features, 5).status == pb.ObservationAck.QUEUED
        assert raw.next_chunk().observation_timestep == 5
    finally:
        raw.close()


def test_oversized_messages_are_refused(server, act_path, features):
    raw = RawSession(server, act_path, features)  # the fixture's server: 1 MiB per message, 2 MiB per observation
    try:
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts([pb.ObservationPart(data=b"\0" * (2 << 20), index=0, total=1)])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        parts = [pb.ObservationPart(data=b"\0" * (512 << 10), index=i, total=6) for i in range(6)]
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts(parts)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "exceeds 2 MiB" in err.value.details()
        assert raw.send(features, 0).status == pb.ObservationAck.QUEUED
    finally:
        raw.close()


def test_setup_errors_are_clear(server, act_path, features, tmp_path):
    with pytest.raises(ServerError, match="NOT_FOUND: Setup: policy folder .*does-not-exist.* does not exist"):
        RemoteBackend(address(server), str(tmp_path / "does-not-exist"), features)
    bad = {**features, "observation.environment_state": {"dtype": "float32", "shape": [7], "names": None}}
    with pytest.raises(ServerError, match=r"'observation.environment_state': the client declares shape \[7\]"):
        RemoteBackend(address(server), str(act_path), bad)
    with pytest.raises(ServerError, match="policy_type='diffusion' but .* holds a 'act' policy"):
        RemoteBackend(address(server), str(act_path), features, policy_type="diffusion")
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        RemoteBackend("localhost", str(act_path), features)


def test_shared_token(act_path, features):
    with PolicyServer(ServeConfig(port=0, token="s3cret")) as server:
        assert check_health(address(server)).status == "SERVING"  # health needs no token
        with pytest.raises(ServerError, match="UNAUTHENTICATED: missing shared token"):
            RemoteBackend(address(server), str(act_path), features)
        with pytest.raises(ServerError, match="UNAUTHENTICATED: wrong shared token"):
            RemoteBackend(address(server), str(act_path), features, token="guess")
        with pytest.raises(grpc.RpcError) as err:
            RawSession(server, act_path, features, token="guess")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        io = ArrayIO(features)
        with RemoteBackend(address(server), str(act_path), features, token="s3cret") as backend:
            stats = RobotClient(io, backend, ClientConfig(fps=50)).run(max_steps=5)
        assert stats.actions_executed == 5


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(act_path, features, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    with PolicyServer(ServeConfig(port=0, tls_cert=str(cert), tls_key=str(key), token="t")) as server:
        with RemoteBackend(address(server), str(act_path), features, tls_ca=str(cert), token="t") as backend:
            stats = RobotClient(ArrayIO(features), backend, ClientConfig(fps=50)).run(max_steps=3)
        assert stats.actions_executed == 3
        with pytest.raises(ServerUnavailableError, match="same TLS setting"):
            RemoteBackend(address(server), str(act_path), features, connect_timeout_s=1.0)  # plaintext client
    with pytest.raises(ValueError, match="TLS needs both --tls-cert and --tls-key"):
        PolicyServer(ServeConfig(port=0, tls_cert=str(cert)))


def test_several_clients_with_different_policies(server, act_path, features, tmp_path):
    other = save_tiny_act(tmp_path / "act6", features, chunk_size=6, n_action_steps=6)
    a = RemoteBackend(address(server), str(act_path), features, client_name="a")
    b = RemoteBackend(address(server), str(other), features, client_name="b")
    c = RemoteBackend(address(server), str(act_path), features, client_name="c")
    try:
        assert (a.chunk_size, b.chunk_size, c.chunk_size) == (10, 6, 10)
        assert not a.setup_reply.from_cache and c.setup_reply.from_cache  # loaded once, shared
        for i, backend in enumerate((a, b, c)):
            backend.submit(ObservationData(timestep=i, tensors=observation_at(features, i), must_process=True))
        got = {}
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            for name, backend in zip("abc", (a, b, c)):
                for event in backend.poll():
                    got[name] = event.chunk
            time.sleep(0.01)
        assert {k: v.observation_timestep for k, v in got.items()} == {"a": 0, "b": 1, "c": 2}
        assert got["b"].actions.shape == (6, 4)
    finally:
        for backend in (a, b, c):
            backend.close()
