"""Named training recipes: the published settings of a model on a benchmark, as frozen dataclasses.

    robokit train --recipe smolvla_libero --dataset ROOT                # the recipe as published
    robokit train --recipe smolvla_libero --dataset ROOT --steps 2000   # flags override the recipe
    cfg = TrainConfig.from_recipe("pi0_libero", dataset="...", steps=2000)

A recipe sets the policy type, policy config fields and training options; everything it leaves out
keeps TrainConfig's default. The full-scale recipes are sized for a GPU.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


@dataclass(frozen=True)
class Recipe:
    name: str
    """The name given to --recipe."""
    summary: str
    """One line: what it trains and where the numbers come from."""
    policy: str
    """Policy type."""
    policy_args: tuple[str, ...] = ()
    """Policy config fields as key=value (JSON values), as --policy-args takes them."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """TrainConfig fields (steps, batch_size, lr, ...)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


# SmolVLA (Shukor et al. 2025) fine-tuning as LeRobot 0.4.4's SmolVLAConfig sets it: AdamW lr 1e-4, betas
# (0.9, 0.95), weight decay 1e-10, clip 10, 1,000 warmup steps, cosine decay to 2.5e-6; batch 64, 200k steps.
# The vision encoder stays frozen and the action expert trains (the policy's defaults). LeRobot decays over
# 30k steps and then holds 2.5e-6; robokit's cosine spans the run's steps.
_SMOLVLA = dict(steps=200_000, batch_size=64, lr=1e-4, betas=(0.9, 0.95), weight_decay=1e-10, grad_clip_norm=10.0, scheduler="cosine",
                warmup_steps=1_000, lr_min=2.5e-6, init="lerobot/smolvla_base")
# pi0 (Black et al. 2024) fine-tuning as openpi / LeRobot 0.4.4's PI0Config set it: lr 2.5e-5, betas (0.9, 0.95),
# weight decay 0.01, clip 1.0, 1,000 warmup steps, cosine decay to 2.5e-6 over 30k steps; batch 32; bf16.
_PI0 = dict(steps=30_000, batch_size=32, lr=2.5e-5, betas=(0.9, 0.95), weight_decay=0.01, grad_clip_norm=1.0, scheduler="cosine",
            warmup_steps=1_000, lr_min=2.5e-6, amp="bf16", init="lerobot/pi0_base")

_ALL = [
    Recipe("act_aloha_transfer_cube", "ACT on ALOHA transfer-cube (Zhao et al. 2023): chunk 100, batch 8, 100k steps",
           "act", ("chunk_size=100", "n_action_steps=100"),
           dict(steps=100_000, batch_size=8, scheduler="constant", grad_clip_norm=10.0)),
    Recipe("diffusion_pusht", "Diffusion Policy on PushT images (Chi et al. 2023): 84x84 crops, batch 64, 200k steps",
           "diffusion", ("crop_shape=[84,84]", "num_inference_steps=100"),
           dict(steps=200_000, batch_size=64, scheduler="cosine", warmup_steps=500, grad_clip_norm=10.0)),
    Recipe("diffusion_pusht_state", "CPU-scale: state-only Diffusion Policy on PushT (the evidence run)",
           "diffusion", ("down_dims=[128,256,512]", "crop_shape=null", "num_inference_steps=10"),
           dict(steps=20_000, batch_size=64, scheduler="cosine", warmup_steps=500)),
    Recipe("act_aloha_state", "CPU-scale: state-only ACT on ALOHA transfer-cube (the evidence runs)",
           "act", ("dim_model=256", "dim_feedforward=1024", "chunk_size=50", "n_action_steps=50"),
           dict(steps=20_000, batch_size=16, lr=1e-4)),
    Recipe("smolvla_libero", "SmolVLA fine-tuned from smolvla_base on LIBERO data (GPU): batch 64, 200k steps",
           "smolvla", (), _SMOLVLA),
    Recipe("smolvla_metaworld", "SmolVLA fine-tuned from smolvla_base on Meta-World data (GPU): batch 64, 200k steps",
           "smolvla", (), _SMOLVLA),
    Recipe("pi0_libero", "pi0 fine-tuned from pi0_base on LIBERO data (GPU, bf16): batch 32, 30k steps",
           "pi0", (), _PI0),
]


def _registry(recipes: list[Recipe]) -> dict[str, Recipe]:
    from robokit.training.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Recipe] = {}
    for recipe in recipes:
        if recipe.name in out:
            raise ValueError(f"recipe {recipe.name!r} is defined twice")
        unknown = sorted(set(recipe.options) - fields)
        if unknown or "policy" in recipe.options or "policy_args" in recipe.options:
            raise ValueError(f"recipe {recipe.name!r}: options {unknown or ['policy/policy_args']} are not TrainConfig "
                             "options (policy and policy_args are the recipe's own fields)")
        out[recipe.name] = recipe
    return out


RECIPES: dict[str, Recipe] = _registry(_ALL)


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; a mistyped name gets a one-line "did you mean"."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown recipe {name!r}.{hint} Recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
