"""Policy configs, feature types and the registry of policy types (`act`, `diffusion`, ...).

A config holds hyperparameters only. The shapes a policy works with come from the features of
the dataset or env it is built for (`{name: {"dtype", "shape", "names"}}`), turned into
`PolicyFeature`s by `policy_features`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

# Where each built-in policy type lives; importing the module registers it.
BUILTIN_POLICIES: dict[str, str] = {
    "act": "robokit.policies.act",
    "diffusion": "robokit.policies.diffusion",
    "smolvla": "robokit.policies.smolvla",
    "pi0": "robokit.policies.pi0",
    "pi05": "robokit.policies.pi0",
}
_REGISTRY: dict[str, type] = {}  # type name -> Policy subclass


class FeatureType(str, Enum):
    VISUAL = "VISUAL"  # camera images, (C, H, W) float in [0, 1]
    STATE = "STATE"  # robot proprioception, `observation.state`
    ENV = "ENV"  # environment state vector, `observation.environment_state`
    ACTION = "ACTION"  # `action`


class NormalizationMode(str, Enum):
    MEAN_STD = "mean_std"  # (x - mean) / std
    MIN_MAX = "min_max"  # min..max -> -1..1
    QUANTILES = "quantiles"  # q01..q99 -> -1..1
    IDENTITY = "identity"  # unchanged


@dataclass(frozen=True)
class PolicyFeature:
    type: FeatureType
    shape: tuple[int, ...]

    def to_json(self) -> dict:
        return {"type": self.type.value, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, name: str, spec: dict) -> "PolicyFeature":
        try:
            ftype = FeatureType(str(spec["type"]).upper())
        except (KeyError, ValueError):
            raise ValueError(
                f"feature {name!r} has type {spec.get('type')!r}; expected one of "
                f"{[t.value for t in FeatureType]}"
            ) from None
        return cls(ftype, tuple(int(s) for s in spec["shape"]))


def feature_type_of(name: str, spec: dict) -> FeatureType | None:
    """The policy-side type of a dataset feature, or None for bookkeeping columns (timestamp, ...)."""
    if spec.get("dtype") in ("image", "video") or name.startswith("observation.image"):
        return FeatureType.VISUAL
    if name == "observation.state":
        return FeatureType.STATE
    if name == "observation.environment_state":
        return FeatureType.ENV
    if name == "action":
        return FeatureType.ACTION
    return None


def policy_features(features: dict[str, dict]) -> dict[str, PolicyFeature]:
    """Dataset/env features -> {name: PolicyFeature}; cameras become (C, H, W)."""
    out: dict[str, PolicyFeature] = {}
    for name, spec in features.items():
        if isinstance(spec, PolicyFeature):
            out[name] = spec
            continue
        ftype = feature_type_of(name, spec)
        if ftype is None:
            continue
        shape = tuple(int(s) for s in spec["shape"])
        if ftype is FeatureType.VISUAL:
            if len(shape) != 3:
                raise ValueError(f"camera feature {name!r} has shape {list(shape)}; expected 3 dimensions")
            names = spec.get("names")
            channels_last = names is None or list(names)[-1] in ("channels", "channel") or shape[-1] in (1, 3, 4)
            if names is not None and list(names)[0] in ("channels", "channel"):
                channels_last = False
            if channels_last:
                shape = (shape[2], shape[0], shape[1])  # (H, W, C) -> (C, H, W)
        out[name] = PolicyFeature(ftype, shape)
    return out


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """Fields every policy shares. Subclasses add their hyperparameters."""

    type: ClassVar[str] = ""
    path_fields: ClassVar[tuple[str, ...]] = ()
    """Fields naming a file or folder; a relative one that exists in a checkpoint folder resolves against it."""

    n_obs_steps: int = 1
    """Number of observation steps (current one included) the policy looks at."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "mean_std", "STATE": "mean_std", "ENV": "mean_std", "ACTION": "mean_std"}
    )
    """Normalization mode per feature type: mean_std, min_max, quantiles (q01/q99) or identity."""
    use_imagenet_stats: bool = True
    """Replace the cameras' mean/std by ImageNet's when building from dataset stats (pretrained backbones expect it)."""

    def __post_init__(self) -> None:
        for key, mode in self.normalization_mapping.items():
            if key.upper() not in FeatureType.__members__:
                raise ValueError(
                    f"normalization_mapping has key {key!r}; expected one of {list(FeatureType.__members__)}"
                )
            try:
                NormalizationMode(str(mode).lower())
            except ValueError:
                raise ValueError(
                    f"normalization_mapping[{key!r}] = {mode!r}; expected one of "
                    f"{[m.value for m in NormalizationMode]}"
                ) from None

    @classmethod
    def resolve_paths(cls, data: dict[str, Any], directory) -> dict[str, Any]:
        """`data` with each relative `path_fields` value that exists under `directory` made absolute."""
        out = dict(data)
        for name in cls.path_fields:
            value = out.get(name)
            if isinstance(value, str) and value and not Path(value).is_absolute() and (Path(directory) / value).exists():
                out[name] = str((Path(directory) / value).resolve())
        return out

    def normalization_mode(self, ftype: FeatureType) -> NormalizationMode:
        mapping = {k.upper(): v for k, v in self.normalization_mapping.items()}
        return NormalizationMode(str(mapping.get(ftype.value, "identity")).lower())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicyConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in names and k not in ("type", "format", "input_features", "output_features")]
        if unknown:
            hints = "".join(_did_you_mean(k, names) for k in unknown)
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}.{hints}")
        kwargs = {}
        for key, value in data.items():
            if key not in names:
                continue
            if isinstance(value, list):
                value = tuple(value)  # JSON lists -> the tuples the frozen configs use
            kwargs[key] = value
        return cls(**kwargs)


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def register_policy(policy_cls: type) -> type:
    """Class decorator: register a Policy subclass under `policy_cls.config_class.type`."""
    name = policy_cls.config_class.type
    if not name:
        raise ValueError(f"{policy_cls.config_class.__name__}.type must be a non-empty type name")
    if name in _REGISTRY and _REGISTRY[name] is not policy_cls:
        raise ValueError(f"policy type {name!r} is already registered by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = policy_cls
    return policy_cls


def available_policies() -> list[str]:
    return sorted(set(_REGISTRY) | set(BUILTIN_POLICIES))


def get_policy_class(name: str) -> type:
    """The Policy subclass registered as `name` ("act", "diffusion", ...)."""
    if name not in _REGISTRY and name in BUILTIN_POLICIES:
        importlib.import_module(BUILTIN_POLICIES[name])
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown policy type {name!r}; expected one of {available_policies()}."
            + _did_you_mean(name, available_policies())
        )
    return _REGISTRY[name]


def get_config_class(name: str) -> type[PolicyConfig]:
    return get_policy_class(name).config_class


def make_config(name: str, **overrides) -> PolicyConfig:
    """A policy config by type name with fields overridden, e.g. `make_config("act", chunk_size=20)`."""
    cls = get_config_class(name)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in overrides:
        if key not in names:
            raise ValueError(f"{cls.__name__} has no field {key!r}.{_did_you_mean(key, names)}")
    return cls(**overrides)
