"""bf16 inference: `policy.to(torch.bfloat16)` casts the network only; normalization and actions stay float32."""

import pytest
import torch

from robokit.policies import Policy, make_config

from .conftest import make_features, make_observation, make_stats

ACT_TINY = dict(chunk_size=8, n_action_steps=4, dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1,
                n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4)
DIFFUSION_TINY = dict(n_obs_steps=2, horizon=8, n_action_steps=4, down_dims=(16, 32), n_groups=4,
                      diffusion_step_embed_dim=16, spatial_softmax_num_keypoints=4, num_inference_steps=3,
                      crop_shape=(24, 24))


def _act():
    features = make_features(cams=("front", "wrist"), state_dim=6, action_dim=6, hw=(48, 64))
    policy = Policy.build(make_config("act", **ACT_TINY), features, make_stats(features)).eval()
    return policy, make_observation(features, batch=2), {}


def _diffusion():
    features = make_features(cams=("top",), state_dim=2, action_dim=2, hw=(32, 32))
    policy = Policy.build(make_config("diffusion", **DIFFUSION_TINY), features, make_stats(features)).eval()
    step_noise = [torch.randn(2, 8, 2) for _ in range(3)]
    return policy, make_observation(features, batch=2, steps=2), dict(noise=torch.randn(2, 8, 2), step_noise=step_noise)


@pytest.mark.parametrize("make", [_act, _diffusion], ids=["act", "diffusion"])
def test_bf16_network_float32_normalization_and_actions(make):
    policy, obs, kwargs = make()
    want = policy.predict_action_chunk(obs, **kwargs)
    stats_before = {k: v.clone() for k, v in policy.normalizer.stats_dict().items()}

    assert policy.to(torch.bfloat16) is policy
    assert policy.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in policy.model.parameters())
    for key, value in policy.normalizer.stats_dict().items():  # stats untouched, still float32
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, stats_before[key], rtol=0, atol=0)

    got = policy.predict_action_chunk(obs, **kwargs)
    assert got.dtype == torch.float32 and got.shape == want.shape
    # bf16 keeps ~3 significant digits: close to float32 in normalized units, but not equal
    diff = (policy.normalizer.normalize("action", got) - policy.normalizer.normalize("action", want)).abs().max()
    assert 0 < diff < 0.1, f"normalized max abs diff {diff:.3g}"

    policy.to(torch.float32)  # back to float32 (with the bf16-rounded weights)
    assert policy.dtype == torch.float32 and policy.predict_action_chunk(obs, **kwargs).dtype == torch.float32


def test_to_device_keeps_dtype_and_rejects_integer_dtypes():
    policy, obs, _ = _act()
    policy.to("cpu")
    assert policy.dtype == torch.float32
    with pytest.raises(TypeError, match="not a floating point type"):
        policy.to(torch.int64)
