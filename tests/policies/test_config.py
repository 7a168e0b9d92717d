import numpy as np
import pytest
import torch

from robokit.policies import FeatureType, Policy, make_config, policy_features
from robokit.policies.config import PolicyFeature, get_policy_class
from robokit.policies.normalize import Normalizer
from robokit.policies.config import NormalizationMode

from .conftest import make_features, make_stats


def test_registry_finds_builtin_types_and_suggests_on_typos():
    assert get_policy_class("act").__name__ == "ACTPolicy"
    assert get_policy_class("diffusion").__name__ == "DiffusionPolicy"
    with pytest.raises(ValueError, match="Did you mean 'diffusion'"):
        get_policy_class("difusion")
    with pytest.raises(ValueError, match="Did you mean 'chunk_size'"):
        make_config("act", chunk_sise=3)


def test_config_rejects_bad_values_with_field_names():
    with pytest.raises(ValueError, match="n_action_steps=20"):
        make_config("act", chunk_size=10, n_action_steps=20)
    with pytest.raises(ValueError, match="normalization_mapping\\['STATE'\\] = 'zscore'"):
        make_config("act", normalization_mapping={"STATE": "zscore"})
    with pytest.raises(ValueError, match=r"horizon=10 must be a multiple of .* = 4"):
        make_config("diffusion", horizon=10, n_action_steps=2, down_dims=(8, 16, 32))


def test_policy_features_types_and_camera_layout():
    pf = policy_features(make_features(cams=("a", "b"), env_dim=4, hw=(48, 64)))
    assert pf["observation.images.a"] == PolicyFeature(FeatureType.VISUAL, (3, 48, 64))
    assert pf["observation.state"].type is FeatureType.STATE
    assert pf["observation.environment_state"].type is FeatureType.ENV
    assert pf["action"].type is FeatureType.ACTION
    assert "timestamp" not in pf


@pytest.mark.parametrize("mode", list(NormalizationMode))
def test_normalization_modes_map_stats_and_round_trip(mode):
    features = {"observation.state": PolicyFeature(FeatureType.STATE, (3,))}
    stats = {"observation.state": {"mean": [1.0, 2.0, 3.0], "std": [2.0, 2.0, 0.5], "min": [0.0, -1.0, 3.0],
                                   "max": [2.0, 3.0, 3.0], "q01": [0.5, 0.0, 2.0], "q99": [1.5, 2.0, 4.0]}}
    norm = Normalizer(features, {FeatureType.STATE: mode}, stats)
    x = torch.tensor([[1.0, 3.0, 3.0], [2.0, -1.0, 4.0]])
    y = norm.normalize("observation.state", x)
    expected = {
        NormalizationMode.MEAN_STD: torch.tensor([[0.0, 0.5, 0.0], [0.5, -1.5, 2.0]]),
        NormalizationMode.MIN_MAX: torch.tensor([[0.0, 1.0, -1.0], [1.0, -1.0, 0.0]]),  # zero range: x - min - 1
        NormalizationMode.QUANTILES: torch.tensor([[0.0, 2.0, 0.0], [2.0, -2.0, 1.0]]),
        NormalizationMode.IDENTITY: x,
    }[mode]
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(norm.unnormalize("observation.state", y), x, rtol=1e-6, atol=1e-5)


def test_a_zero_quantile_range_keeps_other_values_of_order_one():
    """Per-episode quantiles averaged over episodes can give q01 == q99 for a gripper that is constant within each
    episode but differs between tasks: values off that constant must not blow up (they were (x - q01) / 1e-8)."""
    features = {"action": PolicyFeature(FeatureType.ACTION, (1,))}
    norm = Normalizer(features, {FeatureType.ACTION: NormalizationMode.QUANTILES}, {"action": {"q01": [0.5], "q99": [0.5]}})
    y = norm.normalize("action", torch.tensor([[0.5], [1.0], [0.0]]))
    torch.testing.assert_close(y, torch.tensor([[-1.0], [-0.5], [-1.5]]))
    torch.testing.assert_close(norm.unnormalize("action", y), torch.tensor([[0.5], [1.0], [0.0]]))


def test_missing_stats_name_the_feature_and_stat():
    features = {"action": PolicyFeature(FeatureType.ACTION, (2,))}
    with pytest.raises(ValueError, match="'action' uses min_max and needs stat 'min'"):
        Normalizer(features, {FeatureType.ACTION: NormalizationMode.MIN_MAX}, {"action": {"mean": np.zeros(2)}})


def test_imagenet_stats_replace_camera_mean_std():
    features = make_features(cams=("front",))
    cfg = make_config("act", chunk_size=4, n_action_steps=4, dim_model=16, n_heads=2, dim_feedforward=16,
                      n_encoder_layers=1, n_vae_encoder_layers=1, latent_dim=4)
    policy = Policy.build(cfg, features, make_stats(features))
    assert torch.allclose(policy.normalizer.stat("observation.images.front", "mean").flatten(),
                          torch.tensor([0.485, 0.456, 0.406]))
