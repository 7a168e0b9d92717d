"""Policies: the common interface (`Policy`), configs by type name, ACT and Diffusion Policy.

    from robokit.policies import Policy, make_config
    policy = Policy.build(make_config("act", chunk_size=20), dataset.features, dataset.meta.stats)
    policy = Policy.from_pretrained("outputs/train")   # a training output (its last checkpoint), a folder or a hub id
"""

from robokit.policies.config import (
    FeatureType,
    NormalizationMode,
    PolicyConfig,
    PolicyFeature,
    available_policies,
    get_config_class,
    get_policy_class,
    make_config,
    policy_features,
    register_policy,
)
from robokit.policies.policy import Policy

__all__ = [
    "FeatureType",
    "NormalizationMode",
    "Policy",
    "PolicyConfig",
    "PolicyFeature",
    "available_policies",
    "get_config_class",
    "get_policy_class",
    "make_config",
    "policy_features",
    "register_policy",
]
