"""`robokit train --init PATH_OR_REPO`: start from a pretrained policy and fine-tune it on another dataset.

What comes from where:
- the policy type, its config and its weights: the checkpoint (`--policy-args` override config fields,
  e.g. a different `n_action_steps`);
- the normalization stats: the new dataset (its actions and states are what the policy must fit);
- the input/output features: the new dataset. When they equal the checkpoint's, the loaded policy is
  used as is (one copy in memory); otherwise the policy is rebuilt for the dataset's features from the
  checkpoint's config and the weights are loaded into it, which works when no weight's shape depends on
  what changed (a renamed camera; the VLAs pad state and action to a fixed size) and is refused by name
  when one does.
"""

from __future__ import annotations

import logging

from robokit.policies import FeatureType, Policy, policy_features
from robokit.policies.normalize import Normalizer, with_imagenet_stats

logger = logging.getLogger(__name__)


def policy_from_pretrained(source: str, features: dict, stats: dict | None, policy_type: str | None = None,
                           overrides: dict | None = None) -> Policy:
    """The policy in `source` (any form `Policy.from_pretrained` takes), ready to train on a dataset with
    `features` and `stats`."""
    try:
        loaded = Policy.from_pretrained(source, **(overrides or {}))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--init: {e}") from None
    kind = loaded.config.type
    if policy_type and policy_type != kind:
        raise ValueError(f"--policy {policy_type!r} but --init {source!r} holds a policy of type {kind!r}; "
                         f"leave --policy out (the checkpoint's type is used) or give a {policy_type} checkpoint")
    wanted = policy_features(features)
    inputs = {k: v for k, v in wanted.items() if v.type is not FeatureType.ACTION}
    outputs = {k: v for k, v in wanted.items() if v.type is FeatureType.ACTION}
    if inputs == loaded.input_features and outputs == loaded.output_features:
        loaded.normalizer = _normalizer(loaded, stats)
        logger.info("--init %s: %s policy, its weights and config; normalization stats from the dataset", source, kind)
        return loaded.train()
    policy = Policy.build(loaded.config, features, stats)
    weights = loaded.state_dict()
    target = policy.state_dict()
    mismatched = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in weights.items()
                  if k in target and v.shape != target[k].shape]
    if mismatched:
        name, have, need = mismatched[0]
        raise ValueError(
            f"--init {source!r}: {len(mismatched)} weight(s) do not fit this dataset's features, e.g. {name!r} is "
            f"{have} in the checkpoint and {need} here. Checkpoint features: {_describe(loaded)}; "
            f"dataset features: {_describe_features({**inputs, **outputs})}"
        )
    policy.load_weights(weights, source=f"--init {source}")
    logger.info("--init %s: %s policy rebuilt for the dataset's features %s, weights from the checkpoint",
                source, kind, _describe_features({**inputs, **outputs}))
    return policy.train()


def _normalizer(policy: Policy, stats: dict | None) -> Normalizer:
    """A normalizer like the policy's, with the dataset's stats (as `Policy.build` would make it)."""
    config = policy.config
    cameras = policy.image_features
    if config.use_imagenet_stats and cameras and config.normalization_mode(FeatureType.VISUAL).value == "mean_std":
        stats = with_imagenet_stats(stats, cameras)
    modes = {ft: config.normalization_mode(ft) for ft in FeatureType}
    return Normalizer({**policy.input_features, **policy.output_features}, modes, stats).to(policy.device)


def _describe(policy: Policy) -> str:
    return _describe_features({**policy.input_features, **policy.output_features})


def _describe_features(features: dict) -> str:
    return ", ".join(f"{k} {list(f.shape)}" for k, f in features.items())
