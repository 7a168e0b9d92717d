"""Normalization of observations and actions from dataset stats, per feature type.

Modes (config `normalization_mapping`, one per feature type):
- mean_std:  (x - mean) / (std + eps)
- min_max:   2 (x - min) / (max - min) - 1          (a zero range counts as 2: x - min - 1)
- quantiles: 2 (x - q01) / (q99 - q01) - 1          (robust to outliers; a zero range as for min_max)
- identity:  x
The stats live in non-persistent buffers (they move with `.to(device)`) and are saved by the
policy in their own safetensors file next to the weights.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import Tensor, nn

from robokit.policies.config import FeatureType, NormalizationMode, PolicyFeature

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EPS = 1e-8

REQUIRED_STATS = {
    NormalizationMode.MEAN_STD: ("mean", "std"),
    NormalizationMode.MIN_MAX: ("min", "max"),
    NormalizationMode.QUANTILES: ("q01", "q99"),
    NormalizationMode.IDENTITY: (),
}


def _as_tensor(value) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach().to(torch.float32).clone()
    return torch.as_tensor(np.asarray(value, dtype=np.float32))


def _buffer_name(feature: str, stat: str) -> str:
    return re.sub(r"[^0-9a-zA-Z_]", "_", feature) + "__" + stat


class Normalizer(nn.Module):
    """Normalizes the features it was built for; other keys pass through untouched."""

    def __init__(
        self,
        features: dict[str, PolicyFeature],
        modes: dict[FeatureType, NormalizationMode],
        stats: dict[str, dict] | None,
    ):
        super().__init__()
        self.features = dict(features)
        self.modes = {name: modes.get(ft.type, NormalizationMode.IDENTITY) for name, ft in features.items()}
        self._names: dict[tuple[str, str], str] = {}
        stats = stats or {}
        for name, ft in self.features.items():
            mode = self.modes[name]
            for stat in REQUIRED_STATS[mode]:
                if name not in stats or stat not in stats[name]:
                    have = sorted(stats.get(name, {}))
                    raise ValueError(
                        f"normalization: feature {name!r} uses {mode.value} and needs stat {stat!r}; "
                        f"the stats have {have if name in stats else 'no entry for it'}"
                    )
                tensor = _as_tensor(stats[name][stat])
                if ft.type is FeatureType.VISUAL:
                    tensor = tensor.reshape(-1, 1, 1)  # per channel, broadcast over (..., C, H, W)
                elif tensor.numel() != int(np.prod(ft.shape)):
                    raise ValueError(
                        f"normalization: stat {stat!r} of {name!r} has {tensor.numel()} values; "
                        f"the feature has shape {list(ft.shape)}"
                    )
                else:
                    tensor = tensor.reshape(ft.shape)
                key = _buffer_name(name, stat)
                self.register_buffer(key, tensor, persistent=False)
                self._names[(name, stat)] = key

    def stat(self, name: str, stat: str) -> Tensor:
        return getattr(self, self._names[(name, stat)])

    def stats_dict(self) -> dict[str, Tensor]:
        """{"<feature>/<stat>": tensor} for saving with safetensors."""
        return {f"{name}/{stat}": getattr(self, key).contiguous() for (name, stat), key in self._names.items()}

    @staticmethod
    def stats_from_flat(flat: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        out: dict[str, dict[str, Tensor]] = {}
        for key, value in flat.items():
            name, _, stat = key.rpartition("/")
            out.setdefault(name, {})[stat] = value
        return out

    def normalize(self, name: str, x: Tensor) -> Tensor:
        mode = self.modes.get(name, NormalizationMode.IDENTITY)
        if mode is NormalizationMode.IDENTITY:
            return x
        if mode is NormalizationMode.MEAN_STD:
            return (x - self.stat(name, "mean")) / (self.stat(name, "std") + EPS)
        low, high = ("min", "max") if mode is NormalizationMode.MIN_MAX else ("q01", "q99")
        low, high = self.stat(name, low), self.stat(name, high)
        span = _span(high - low)
        return 2 * (x - low) / span - 1

    def unnormalize(self, name: str, x: Tensor) -> Tensor:
        mode = self.modes.get(name, NormalizationMode.IDENTITY)
        if mode is NormalizationMode.IDENTITY:
            return x
        if mode is NormalizationMode.MEAN_STD:
            return x * (self.stat(name, "std") + EPS) + self.stat(name, "mean")
        low, high = ("min", "max") if mode is NormalizationMode.MIN_MAX else ("q01", "q99")
        low, high = self.stat(name, low), self.stat(name, high)
        span = _span(high - low)
        return (x + 1) / 2 * span + low

    def forward(self, batch: dict) -> dict:
        """A copy of `batch` with every known feature normalized."""
        return {k: self.normalize(k, v) if k in self.features else v for k, v in batch.items()}


def with_imagenet_stats(stats: dict | None, camera_names: list[str]) -> dict:
    """A copy of `stats` where each camera's mean/std are ImageNet's (shape (3, 1, 1))."""
    out = {k: dict(v) for k, v in (stats or {}).items()}
    for name in camera_names:
        entry = out.setdefault(name, {})
        entry["mean"] = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).reshape(3, 1, 1)
        entry["std"] = torch.tensor(IMAGENET_STD, dtype=torch.float32).reshape(3, 1, 1)
    return out


def _span(span: Tensor) -> Tensor:
    """A zero range (a value constant in the stats) scales by 1 instead of 1/eps: the constant still maps to -1,
    and another value (a gripper that is constant within each episode but differs between tasks, whose
    per-episode quantiles average to q01 == q99) stays of order one instead of blowing up to ~1e8."""
    return torch.where(span == 0, torch.full_like(span, 2.0), span)
