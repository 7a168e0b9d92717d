"""A vision-language-action policy served like any other: the instruction travels with each observation."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest

pytest.importorskip("transformers")
import torch

from robokit.policies import Policy, make_config
from robokit.policies.smolvla_backbone import write_backbone
from robokit.serving import robokit_serving_pb2 as pb
from robokit.serving import robokit_serving_pb2_grpc as pb_grpc
from robokit.serving.engine import InferenceEngine, ObservationData
from robokit.serving.server import SESSION_KEY
from robokit.serving.transport import observation_message, split_parts

from .conftest import make_features, make_stats, observation_at


@pytest.fixture(scope="module")
def smolvla(tmp_path_factory):
    root = tmp_path_factory.mktemp("vla")
    features = make_features(env_dim=0, cams={"top": (64, 64)})
    config = make_config("smolvla", vlm_model_name=str(write_backbone(root / "backbone")), num_vlm_layers=0,
                         chunk_size=5, n_action_steps=5, max_state_dim=8, max_action_dim=8,
                         resize_imgs_with_padding=(64, 64), num_steps=2)
    torch.manual_seed(0)
    Policy.build(config, features, make_stats(features)).save_pretrained(root / "policy")
    return root / "policy", features


def chunk_over_grpc(server, path, features, task: str) -> np.ndarray:
    from robokit.serving.tensors import decode_tensor

    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.PolicyServerStub(channel)
        reply = stub.Setup(pb.PolicySetup(policy_path=str(path), features_json=json.dumps(features)), timeout=120)
        assert reply.policy_type == "smolvla" and reply.chunk_size == 5
        metadata = [(SESSION_KEY, reply.session_id)]
        stream = stub.StreamActions(pb.StreamActionsRequest(), metadata=metadata)
        obs = ObservationData(timestep=0, tensors=observation_at(features, 0), task=task)
        torch.manual_seed(7)  # the server runs in this process: the sampling noise comes from this seed
        stub.SendObservation(iter(split_parts(observation_message(obs).SerializeToString(), 64 * 1024)),
                             metadata=metadata, timeout=60)
        return decode_tensor(next(stream).actions)


def test_smolvla_over_grpc_gets_the_instruction(server, smolvla):
    path, features = smolvla
    engine = InferenceEngine(Policy.from_pretrained(path), features)

    def local(task: str) -> np.ndarray:
        torch.manual_seed(7)
        return engine.predict(ObservationData(0, observation_at(features, 0), task=task), 0.0).actions

    served = chunk_over_grpc(server, path, features, "pick up the cube")
    assert served.shape == (5, 4) and np.isfinite(served).all()
    np.testing.assert_allclose(served, local("pick up the cube"), rtol=1e-4, atol=1e-5)
    assert not np.allclose(served, local("open the drawer"), atol=1e-4)  # the words reach the model
