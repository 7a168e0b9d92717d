import pytest
import torch

from robokit.policies import Policy, make_config

from .conftest import make_batch, make_features, make_observation, make_stats

TINY = dict(chunk_size=8, n_action_steps=4, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
            n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4)


def build(features, **overrides):
    return Policy.build(make_config("act", **{**TINY, **overrides}), features, make_stats(features))


VARIANTS = {
    "one_camera_state": dict(cams=("front",), state_dim=6),
    "two_cameras_state": dict(cams=("front", "wrist"), state_dim=6),
    "env_state_only": dict(cams=(), state_dim=0, env_dim=10),
    "env_and_state": dict(cams=(), state_dim=14, env_dim=6),
    "camera_no_state": dict(cams=("front",), state_dim=0),
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("use_vae", [True, False])
def test_shapes_losses_and_gradients(variant, use_vae):
    features = make_features(hw=(32, 32), **VARIANTS[variant])
    policy = build(features, use_vae=use_vae).train()
    batch = make_batch(features, horizon=8)
    loss, logs = policy(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert ("kld_loss" in logs) == use_vae
    loss.backward()
    grads = [p.grad for n, p in policy.named_parameters() if "action_head" in n]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    chunk = policy.eval().predict_action_chunk(make_observation(features))
    assert chunk.shape == (2, 8, 6)


def test_padded_actions_do_not_change_the_loss():
    features = make_features(cams=(), state_dim=4, env_dim=4)
    policy = build(features, use_vae=False, dropout=0.0).train()
    batch = make_batch(features, horizon=8)
    loss1, _ = policy(batch)
    batch["action"][0, -2:] += 100.0  # padded positions
    loss2, _ = policy(batch)
    torch.testing.assert_close(loss1, loss2)


def test_select_action_queues_n_action_steps():
    features = make_features(cams=("front",), hw=(32, 32))
    policy = build(features).eval()
    obs = make_observation(features)
    chunk = policy.predict_action_chunk(obs)
    actions = [policy.select_action(obs) for _ in range(4)]
    torch.testing.assert_close(torch.stack(actions, 1), chunk[:, :4])
    other = make_observation(features, seed=5)
    torch.testing.assert_close(policy.select_action(other), policy.predict_action_chunk(other)[:, 0])
    policy.reset()
    torch.testing.assert_close(policy.select_action(obs), chunk[:, 0])


def test_temporal_ensembling_averages_overlapping_chunks():
    features = make_features(cams=(), state_dim=3, env_dim=3)
    policy = build(features, n_action_steps=1, temporal_ensemble_coeff=0.5).eval()
    obs1, obs2 = make_observation(features, seed=1), make_observation(features, seed=2)
    c1, c2 = policy.predict_action_chunk(obs1), policy.predict_action_chunk(obs2)
    policy.reset()
    torch.testing.assert_close(policy.select_action(obs1), c1[:, 0])
    w0, w1 = 1.0, torch.exp(torch.tensor(-0.5)).item()  # the older chunk weighs more
    torch.testing.assert_close(policy.select_action(obs2), (w0 * c1[:, 1] + w1 * c2[:, 0]) / (w0 + w1))


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    features = make_features(cams=("front", "wrist"), hw=(32, 32))
    policy = build(features).eval()
    obs = make_observation(features)
    policy.save_pretrained(tmp_path / "act")
    assert {p.name for p in (tmp_path / "act").iterdir()} == {"config.json", "model.safetensors", "normalization.safetensors"}
    loaded = Policy.from_pretrained(tmp_path / "act")
    assert type(loaded).__name__ == "ACTPolicy" and loaded.config == policy.config
    torch.testing.assert_close(loaded.predict_action_chunk(obs), policy.predict_action_chunk(obs), rtol=0, atol=0)


def test_bad_observation_names_the_missing_key():
    features = make_features(cams=("front",), hw=(32, 32))
    policy = build(features).eval()
    obs = make_observation(features)
    del obs["observation.state"]
    with pytest.raises(KeyError, match="no 'observation.state'"):
        policy.select_action(obs)
    with pytest.raises(ValueError, match="chunk_size is 8"):
        policy(make_batch(features, horizon=5))
