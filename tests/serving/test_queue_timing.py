"""The client's threshold logic under simulated latency (fake clock, real policy), and session rules."""

import threading

import numpy as np
import pytest

from robokit.policies import Policy
from robokit.serving.backends import LocalBackend
from robokit.serving.client import ClientConfig, RobotClient
from robokit.serving.clock import FakeClock
from robokit.serving.engine import InferenceEngine, InferenceSession, ObservationData

from .conftest import ArrayIO, observation_at

FPS = 10.0
LATENCY_S = 0.35  # a chunk arrives 4 ticks after its observation was sent


def run(act_path, features, steps=30, **config):
    clock = FakeClock()
    policy = Policy.from_pretrained(act_path)
    backend = LocalBackend(policy, features, inline=True, latency_s=LATENCY_S, clock=clock)
    io = ArrayIO(features)
    client = RobotClient(io, backend, ClientConfig(fps=FPS, **config), clock=clock)
    stats = client.run(max_steps=steps)
    return stats, io, InferenceEngine(policy, features)


def predicted(engine, features, timestep):
    obs = ObservationData(timestep=timestep, tensors=observation_at(features, timestep))
    return engine.predict(obs, 0.0).actions


def test_async_threshold_keeps_the_queue_filled(act_path, features):
    stats, io, engine = run(act_path, features, chunk_size_threshold=0.5)
    assert stats.empty_ticks == 4 and stats.empty_ticks_after_start == 0  # only the first chunk's wait
    assert min(stats.queue_lengths[5:]) > 0
    assert stats.ticks == 34 and stats.elapsed_s == pytest.approx(3.3)  # 30 actions + 4 start-up ticks at 10 fps
    assert stats.round_trip_ms and all(r == pytest.approx(LATENCY_S * 1e3) for r in stats.round_trip_ms)
    # The first chunk (observation 0) drives timesteps 0..8; observation 5 was sent at timestep 5 with 5
    # actions left, its chunk arrived 4 ticks later: timesteps 5..8 were stale, 9.. come from it.
    executed = np.stack(io.actions)
    np.testing.assert_allclose(executed[:9], predicted(engine, features, 0)[:9], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(executed[9:14], predicted(engine, features, 5)[4:9], rtol=1e-5, atol=1e-6)
    assert stats.stale_actions >= 4


def test_low_threshold_runs_dry(act_path, features):
    stats, _, _ = run(act_path, features, chunk_size_threshold=0.2)  # sends with 2 actions left, latency is 4 ticks
    assert stats.empty_ticks_after_start == 2 * (stats.chunks_received - 1)


def test_sync_mode_idles_for_every_chunk(act_path, features):
    stats, io, engine = run(act_path, features, mode="sync")
    assert stats.chunks_received == 3 and stats.observations_sent == 3
    assert stats.empty_ticks == 12 and stats.empty_ticks_after_start == 8  # 4 idle ticks per chunk
    assert stats.stale_actions == 0
    executed = np.stack(io.actions)
    np.testing.assert_allclose(executed[10:20], predicted(engine, features, 10), rtol=1e-5, atol=1e-6)


def test_async_is_faster_than_sync_at_equal_work(act_path, features):
    fast, _, _ = run(act_path, features, chunk_size_threshold=0.6)
    slow, _, _ = run(act_path, features, mode="sync")
    assert fast.actions_executed == slow.actions_executed == 30
    assert slow.elapsed_s - fast.elapsed_s == pytest.approx(0.8)  # 2 chunk waits of 4 ticks saved


def test_session_skips_a_timestep_already_predicted_unless_must_process(act_path, features):
    session = InferenceSession(InferenceEngine(Policy.from_pretrained(act_path), features), inline=True)
    obs = lambda t, must=False: ObservationData(timestep=t, tensors=observation_at(features, t), must_process=must)
    assert session.submit(obs(3)) == (True, False)
    assert session.outbox.get_nowait().observation_timestep == 3
    assert session.submit(obs(3)) == (False, False) and session.outbox.empty()
    assert session.submit(obs(3, must=True))[0] and session.outbox.get_nowait().timesteps[0] == 3
    session.reset()  # a new episode: timestep 3 can be predicted again
    assert session.submit(obs(3))[0]
    assert session.counts == {"received": 4, "skipped": 1, "replaced": 0, "predicted": 3}


class GatedPolicy:
    """A real policy that waits for the test to open a gate before each prediction."""

    def __init__(self, policy):
        self.policy, self.gate, self.started = policy, threading.Event(), threading.Event()
        self.input_features, self.output_features, self.config = policy.input_features, policy.output_features, policy.config

    def predict_action_chunk(self, obs):
        self.started.set()
        assert self.gate.wait(10)
        return self.policy.predict_action_chunk(obs)


def test_session_keeps_only_the_newest_waiting_observation(act_path, features):
    gated = GatedPolicy(Policy.from_pretrained(act_path))
    session = InferenceSession(InferenceEngine(gated, features), name="gated")
    try:
        session.submit(ObservationData(timestep=0, tensors=observation_at(features, 0)))
        assert gated.started.wait(10)  # the worker is busy with timestep 0
        replaced = [session.submit(ObservationData(timestep=t, tensors=observation_at(features, t)))[1] for t in (1, 2, 3)]
        assert replaced == [False, True, True]
        gated.gate.set()
        done = [session.outbox.get(timeout=10).observation_timestep for _ in range(2)]
        assert done == [0, 3]  # 1 and 2 were dropped while waiting
        assert session.counts["replaced"] == 2
    finally:
        gated.gate.set()
        session.close()


def test_features_that_do_not_match_the_policy_are_rejected(act_path, features):
    policy = Policy.from_pretrained(act_path)
    bad = {**features, "observation.state": {**features["observation.state"], "shape": [5]}}
    with pytest.raises(ValueError, match=r"'observation.state': the client declares shape \[5\], the policy expects \[4\]"):
        InferenceEngine(policy, bad)
    missing = {k: v for k, v in features.items() if k != "observation.environment_state"}
    with pytest.raises(ValueError, match="the policy needs 'observation.environment_state'"):
        InferenceEngine(policy, missing)
