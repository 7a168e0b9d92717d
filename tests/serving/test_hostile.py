"""Hostile calls against a real server on 127.0.0.1: bad values, bad frames, bytes that are no message,
and one client trying to take every session. Each must fail that call only, with a clear status."""

from __future__ import annotations

import json
import logging
import time

import grpc
import numpy as np
import pytest

from robokit.serving import robokit_serving_pb2 as pb
from robokit.serving.engine import InferenceEngine, ObservationData, ObservationError
from robokit.serving.server import PolicyServer, ServeConfig, peer_host
from robokit.serving.transport import (
    RemoteBackend,
    ServerError,
    check_health,
    observation_message,
    split_parts,
)

from .conftest import make_features, observation_at, save_tiny_act
from .test_server import RawSession, address

SERVICE = "/robokit.serving.v1.PolicyServer"
GARBAGE = b"\xff\xff\xff\xff not a protobuf message"


@pytest.fixture(scope="module")
def camera_policy(tmp_path_factory):
    feats = make_features(state_dim=4, env_dim=0, action_dim=4, cams={"front": (12, 16)})
    return save_tiny_act(tmp_path_factory.mktemp("cam") / "act", feats), feats


def send_tensors(raw: RawSession, timestep: int, tensors: dict):
    obs = ObservationData(timestep=timestep, tensors=tensors, must_process=True)
    return raw.send_parts(split_parts(observation_message(obs).SerializeToString(), 1 << 20))


@pytest.mark.parametrize("bad, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (1e39, "1e+39")])
def test_non_finite_state_is_refused_by_name(server, act_path, features, bad, shown):
    raw = RawSession(server, act_path, features)
    try:
        tensors = observation_at(features, 0)
        state = tensors["observation.state"].astype(np.float64)
        state[2] = bad
        tensors["observation.state"] = state
        with pytest.raises(grpc.RpcError) as err:
            send_tensors(raw, 0, tensors)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"'observation.state'[2] = {shown}" in err.value.details()
        assert "expected finite float32 values" in err.value.details()
        # the session still answers, with finite actions
        assert raw.send(features, 1, must_process=True).status == pb.ObservationAck.QUEUED
        chunk = raw.next_chunk()
        assert chunk.observation_timestep == 1
        actions = np.frombuffer(chunk.actions.data, np.float32)
        assert np.isfinite(actions).all()
    finally:
        raw.close()


def test_float_frames_in_0_1_mean_the_same_picture_as_uint8(server, camera_policy):
    path, feats = camera_policy
    raw = RawSession(server, path, feats)
    try:
        tensors = observation_at(feats, 3)
        frame = tensors["observation.images.front"]
        assert frame.dtype == np.uint8 and frame.max() > 200
        send_tensors(raw, 0, tensors)
        as_uint8 = np.frombuffer(raw.next_chunk().actions.data, np.float32)
        send_tensors(raw, 1, {**tensors, "observation.images.front": frame.astype(np.float32) / 255.0})
        as_float = np.frombuffer(raw.next_chunk().actions.data, np.float32)
        np.testing.assert_allclose(as_float, as_uint8, rtol=1e-5, atol=1e-5)  # was darkened 255x
    finally:
        raw.close()


@pytest.mark.parametrize("frame, message", [
    (lambda f: f.astype(np.float32), r"float32 frame with values in \[0, 2\d\d\]; float frames must be in \[0, 1\]"),
    (lambda f: np.where(f > 128, np.nan, f / 255.0).astype(np.float32), "float frames must be in [0, 1]"),
    (lambda f: f.astype(np.int16), "is a int16 frame; expected uint8 (0..255) or float in [0, 1]"),
])
def test_frames_outside_the_convention_are_refused(server, camera_policy, frame, message):
    path, feats = camera_policy
    raw = RawSession(server, path, feats)
    try:
        tensors = observation_at(feats, 0)
        tensors["observation.images.front"] = frame(tensors["observation.images.front"])
        with pytest.raises(grpc.RpcError) as err:
            send_tensors(raw, 0, tensors)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'observation.images.front'" in err.value.details()
        if message.startswith("float32 frame"):
            import re

            assert re.search(message, err.value.details()), err.value.details()
        else:
            assert message in err.value.details()
    finally:
        raw.close()


def test_the_local_engine_checks_the_same_way(act_path, features):
    from robokit.policies import Policy

    engine = InferenceEngine(Policy.from_pretrained(act_path), features)
    tensors = observation_at(features, 0)
    tensors["observation.environment_state"][0] = np.nan
    with pytest.raises(ObservationError, match=r"'observation.environment_state'\[0\] = nan"):
        engine.check(ObservationData(0, tensors))


def test_bytes_that_are_no_message_get_invalid_argument_and_no_traceback(server, act_path, features, caplog):
    channel = grpc.insecure_channel(address(server))
    raw = RawSession(server, act_path, features)
    try:
        with caplog.at_level(logging.INFO):
            setup = channel.unary_unary(f"{SERVICE}/Setup")  # no serializers: the bytes go as they are
            with pytest.raises(grpc.RpcError) as err:
                setup(GARBAGE, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "Setup: the request (" in err.value.details() and "is not a valid PolicySetup message" in err.value.details()

            send = channel.stream_unary(f"{SERVICE}/SendObservation")
            with pytest.raises(grpc.RpcError) as err:
                send(iter([GARBAGE]), metadata=raw.metadata, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid ObservationPart message" in err.value.details()

            reset = channel.unary_unary(f"{SERVICE}/Reset")
            with pytest.raises(grpc.RpcError) as err:
                reset(GARBAGE, metadata=raw.metadata, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], \
            [r.getMessage() for r in caplog.records]
        assert raw.send(features, 4).status == pb.ObservationAck.QUEUED  # the session still works
        assert raw.next_chunk().observation_timestep == 4
    finally:
        raw.close()
        channel.close()


@pytest.mark.parametrize("feature, shape, message", [
    ("observation.state", None, "feature 'observation.state' has shape None; expected a list of non-negative integers"),
    ("observation.state", [[4]], "has shape [[4]]; expected a list of non-negative integers"),
    ("action", [], "feature 'action' has shape []; expected [action_dim]"),
])
def test_features_with_bad_shapes_are_refused_at_setup(server, act_path, features, feature, shape, message):
    bad = {**features, feature: {**features[feature], "shape": shape}}
    with pytest.raises(ServerError) as err:  # was UNKNOWN ("Exception calling application") + a traceback
        RemoteBackend(address(server), str(act_path), bad)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in str(err.value)


def test_a_chunk_of_non_finite_actions_stops_the_client(act_path, features):
    from robokit.serving.backends import LocalBackend
    from robokit.serving.client import RobotClient

    from .conftest import ArrayIO

    class NaNPolicy:  # a broken model: every action NaN
        def __init__(self, policy):
            self.policy = policy
            self.config, self.input_features, self.output_features = policy.config, policy.input_features, policy.output_features

        def predict_action_chunk(self, obs, **kwargs):
            return self.policy.predict_action_chunk(obs) * float("nan")

    from robokit.policies import Policy

    io = ArrayIO(features)
    client = RobotClient(io, LocalBackend(NaNPolicy(Policy.from_pretrained(act_path)), features, inline=True))
    with pytest.raises(ValueError, match="holds non-finite actions"):
        client.run(max_steps=5)
    assert io.actions == []


@pytest.mark.parametrize("shape", [[2**32, 2**32], [2**62, 4], [2**63 - 1, 2]])
def test_a_shape_whose_size_overflows_int64_is_refused(server, act_path, features, shape):
    from robokit.serving.tensors import TensorDecodeError, decode_tensor

    tensor = pb.Tensor(dtype=pb.FLOAT32, shape=shape, data=b"")
    with pytest.raises(TensorDecodeError, match=r"0 bytes for dtype float32 shape .*; expected \d+"):
        decode_tensor(tensor, "observation.state")  # was a raw numpy ValueError: the product wrapped around to 0
    raw = RawSession(server, act_path, features)
    try:
        obs = observation_message(ObservationData(0, observation_at(features, 0)))
        obs.tensors["observation.state"].CopyFrom(tensor)
        with pytest.raises(grpc.RpcError) as err:  # was UNKNOWN with a traceback
            raw.send_parts(split_parts(obs.SerializeToString(), 1 << 20))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"'observation.state' has shape {shape}, declared [4]" in err.value.details()
    finally:
        raw.close()


def test_a_jpeg_larger_than_declared_is_refused_before_decoding(server, camera_policy):
    import io

    from PIL import Image

    path, feats = camera_policy
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000)).save(buffer, format="JPEG", quality=10)  # ~36 MB of pixels in a few KB
    raw = RawSession(server, path, feats)
    try:
        obs = observation_message(ObservationData(0, observation_at(feats, 0)))
        obs.tensors["observation.images.front"].CopyFrom(
            pb.Tensor(dtype=pb.UINT8, shape=[12, 16, 3], data=buffer.getvalue(), encoding=pb.JPEG))
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts(split_parts(obs.SerializeToString(), 1 << 20))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "JPEG decodes to [3000, 4000, 3], the message declares [12, 16, 3]" in err.value.details()
        obs.tensors["observation.images.front"].shape[:] = [3000, 4000, 3]
        with pytest.raises(grpc.RpcError) as err:
            raw.send_parts(split_parts(obs.SerializeToString(), 1 << 20))
        assert "'observation.images.front' has shape [3000, 4000, 3], declared [12, 16, 3]" in err.value.details()
    finally:
        raw.close()


def test_peer_host():
    assert peer_host("ipv4:10.0.0.5:51234") == "10.0.0.5"
    assert peer_host("ipv6:[::1]:5000") == "::1"
    assert peer_host("unix:/tmp/sock") == "unix:/tmp/sock"


def setup_only(target: str, policy, features, token="s3cret"):
    """What a hostile token holder does: Setup, and never open the action stream."""
    channel = grpc.insecure_channel(target)
    try:
        setup = channel.unary_unary(f"{SERVICE}/Setup", request_serializer=pb.PolicySetup.SerializeToString,
                                    response_deserializer=pb.SetupReply.FromString)
        return setup(pb.PolicySetup(policy_path=str(policy), features_json=json.dumps(features)),
                     metadata=[("authorization", f"Bearer {token}")], timeout=60)
    finally:
        channel.close()


def test_one_token_holder_cannot_lock_out_the_other_clients(act_path, features):
    cfg = ServeConfig(host="[::]", port=0, token="s3cret", max_sessions=6, max_sessions_per_client=3, stream_wait_s=1.5)
    with PolicyServer(cfg) as server:
        hostile = f"[::1]:{server.port}"
        for _ in range(3):
            setup_only(hostile, act_path, features)
        with pytest.raises(grpc.RpcError) as err:  # the 4th of 16 attempted Setups
            setup_only(hostile, act_path, features)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "already holds 3 sessions (--max-sessions-per-client 3)" in err.value.details()
        # another client host still gets in, and streams
        other = RemoteBackend(f"127.0.0.1:{server.port}", str(act_path), features, token="s3cret")
        try:
            assert check_health(f"127.0.0.1:{server.port}").sessions == 4
            time.sleep(1.7)  # the sessions that never opened their action stream are closed at the next Setup
            setup_only(hostile, act_path, features)
            assert check_health(f"127.0.0.1:{server.port}").sessions == 2  # the streaming one and the new one
            other.submit(ObservationData(0, observation_at(features, 0), must_process=True))
            deadline = time.monotonic() + 30
            while not (events := other.poll()) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert events and other.error is None
        finally:
            other.close()


def test_serve_refuses_a_zero_per_client_limit():
    with pytest.raises(ValueError, match="--max-sessions-per-client 0; expected >= 1"):
        PolicyServer(ServeConfig(port=0, max_sessions_per_client=0))
