import pytest
import torch

from robokit.policies import Policy, make_config
from robokit.policies.noise_schedulers import NoiseScheduler

from .conftest import make_batch, make_features, make_observation, make_stats

TINY = dict(n_obs_steps=2, horizon=8, n_action_steps=4, down_dims=(16, 32), n_groups=4, diffusion_step_embed_dim=16,
            spatial_softmax_num_keypoints=4, num_inference_steps=3, crop_shape=(24, 24))


def build(features, **overrides):
    return Policy.build(make_config("diffusion", **{**TINY, **overrides}), features, make_stats(features))


VARIANTS = {
    "camera_state": (dict(cams=("top",), state_dim=2), {}),
    "two_cameras_separate_encoders": (dict(cams=("a", "b"), state_dim=2), dict(use_separate_rgb_encoder_per_camera=True)),
    "state_only": (dict(cams=(), state_dim=2, env_dim=16), dict(crop_shape=None)),
    "ddim_no_film_scale": (dict(cams=("top",), state_dim=2), dict(noise_scheduler_type="DDIM", use_film_scale_modulation=False)),
    "sample_prediction_batchnorm": (dict(cams=("top",), state_dim=2), dict(prediction_type="sample", use_group_norm=False)),
    "three_levels": (dict(cams=(), state_dim=3, env_dim=4), dict(down_dims=(8, 16, 32), crop_shape=None)),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_losses_and_sampling(variant):
    feat_kwargs, overrides = VARIANTS[variant]
    features = make_features(hw=(32, 32), action_dim=2, **feat_kwargs)
    policy = build(features, **overrides).train()
    loss, logs = policy(make_batch(features, horizon=8, obs_steps=2))
    assert torch.isfinite(loss) and logs["loss"] == pytest.approx(loss.item())
    loss.backward()
    assert policy.model.unet.final_conv[1].weight.grad.abs().sum() > 0
    chunk = policy.eval().predict_action_chunk(make_observation(features, steps=2))
    assert chunk.shape == (2, 4, 2)


def test_noise_injection_makes_sampling_deterministic():
    features = make_features(cams=("top",), state_dim=2, action_dim=2, hw=(32, 32))
    policy = build(features).eval()
    obs = make_observation(features, steps=2)
    noise = torch.randn(2, 8, 2)
    step_noise = [torch.randn(2, 8, 2) for _ in range(3)]
    a = policy.predict_action_chunk(obs, noise=noise, step_noise=step_noise)
    b = policy.predict_action_chunk(obs, noise=noise, step_noise=step_noise)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    d = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(c, d, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    with pytest.raises(ValueError, match="noise has shape"):
        policy.predict_action_chunk(obs, noise=torch.randn(2, 5, 2))


def test_select_action_keeps_observation_history():
    features = make_features(cams=(), state_dim=2, env_dim=4, action_dim=2)
    policy = build(features, crop_shape=None).eval()
    o1, o2 = make_observation(features, seed=1), make_observation(features, seed=2)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    first = policy.select_action(o1, generator=g())
    history = {k: torch.stack([o1[k], o1[k]], 1) for k in o1}  # a new episode repeats the first frame
    torch.testing.assert_close(first, policy.predict_action_chunk(history, generator=g())[:, 0])
    for _ in range(3):
        policy.select_action(o2, generator=g())
    # The queue is empty now: the next chunk is conditioned on the last two observations.
    nxt = policy.select_action(o1, generator=g())
    history = {k: torch.stack([o2[k], o1[k]], 1) for k in o1}
    torch.testing.assert_close(nxt, policy.predict_action_chunk(history, generator=g())[:, 0])


def test_save_load_round_trip(tmp_path):
    features = make_features(cams=("top",), state_dim=2, action_dim=2, hw=(32, 32))
    policy = build(features).eval()
    policy.save_pretrained(tmp_path)
    loaded = Policy.from_pretrained(tmp_path)
    obs = make_observation(features, steps=2)
    noise = torch.randn(2, 8, 2)
    kw = lambda: dict(noise=noise, generator=torch.Generator().manual_seed(1))  # noqa: E731
    torch.testing.assert_close(loaded.predict_action_chunk(obs, **kw()), policy.predict_action_chunk(obs, **kw()),
                               rtol=0, atol=0)


def test_random_crop_in_training_center_crop_in_eval():
    features = make_features(cams=("top",), state_dim=2, action_dim=2, hw=(32, 40))
    enc = build(features).model.rgb_encoder
    x = torch.arange(2 * 3 * 32 * 40, dtype=torch.float32).reshape(2, 3, 32, 40)
    enc.eval()
    torch.testing.assert_close(enc.crop(x), x[..., 4:28, 8:32])
    enc.train()
    crops = enc.crop(x.repeat(8, 1, 1, 1))
    assert crops.shape == (16, 3, 24, 24)
    assert len({c[0, 0, 0].item() for c in crops}) > 1  # different windows


def test_scheduler_schedule_and_noising():
    s = NoiseScheduler("DDPM", 100, "squaredcos_cap_v2")
    assert s.timesteps(5) == [80, 60, 40, 20, 0]
    assert 0 < s.alphas_cumprod[-1] < 1e-3 and abs(s.alphas_cumprod[0] - 1) < 1e-3
    x0, eps = torch.ones(2, 4, 1), torch.zeros(2, 4, 1)
    noisy = s.add_noise(x0, eps, torch.tensor([0, 99]))
    assert noisy[0].mean() > 0.99 and noisy[1].mean() < 0.05
    with pytest.raises(ValueError, match="num_inference_steps=0"):
        s.timesteps(0)


def test_film_for_all_steps_at_once_equals_film_per_step():
    """Sampling computes every block's FiLM for all steps in one pass (step-major rows); it must give
    what the U-Net computes for each step on its own, for each sample of a batch."""
    features = make_features(cams=(), state_dim=3, env_dim=4, action_dim=2)
    policy = build(features, crop_shape=None, num_inference_steps=4).eval()
    model = policy.model
    cond = torch.randn(3, 2 * (3 + 4))  # (B, n_obs_steps * (state + env))
    films = model._films_per_step(cond)
    assert sorted(films) == sorted(model.scheduler.timesteps(4))
    for t, per_block in films.items():
        want = model.unet.films(torch.full((3,), t), cond)
        for got, ref in zip(per_block, want, strict=True):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    assert model._films_per_step(cond, max_bytes=0) is None  # past the budget: per step
    noise = torch.randn(3, 8, 2)
    with torch.no_grad():
        batched = model.generate_actions(cond, noise=noise, generator=torch.Generator().manual_seed(0))
        model._films_per_step = lambda global_cond: None  # the per-step path
        per_step = model.generate_actions(cond, noise=noise, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(batched, per_step, rtol=1e-5, atol=1e-5)
