"""Configs of π0 and π0.5 (Physical Intelligence, 2024 / 2025): a PaliGemma vision-language model and a
smaller Gemma "action expert" trained with flow matching.

Field names follow LeRobot's `PI0Config` / `PI05Config` so that a LeRobot config.json maps onto them.
The published size is the default: PaliGemma 3B (SigLIP so400m/14 at 224 px + Gemma 2B) and a Gemma 300M
expert, 50-step chunks, 10 Euler steps, state and action padded to 32. Smaller models for tests and
experiments override the variants with `vlm_overrides`, `expert_overrides` and `vision_overrides`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robokit.policies.config import PolicyConfig


@dataclass(frozen=True)
class GemmaShape:
    """Width and depth of one Gemma transformer (openpi's `gemma.get_config` variants)."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


GEMMA_VARIANTS: dict[str, GemmaShape] = {
    "gemma_300m": GemmaShape(width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256),
    "gemma_2b": GemmaShape(width=2048, depth=18, mlp_dim=16_384, num_heads=8, num_kv_heads=1, head_dim=256),
}

# PaliGemma's SigLIP so400m/14 tower as π0 uses it (LeRobot / openpi: intermediate 4304, gelu_fast projector).
SIGLIP_SO400M: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
}
PALIGEMMA_VOCAB_SIZE = 257_152


@dataclass(frozen=True, kw_only=True)
class PI0Config(PolicyConfig):
    """π0 hyperparameters; defaults as published (openpi) and in LeRobot 0.4.4."""

    type = "pi0"
    path_fields: ClassVar[tuple[str, ...]] = ("tokenizer_name",)

    paligemma_variant: str = "gemma_2b"
    """Gemma size of the vision-language model: gemma_2b (published) or gemma_300m."""
    action_expert_variant: str = "gemma_300m"
    """Gemma size of the action expert: gemma_300m (published) or gemma_2b."""
    vlm_overrides: dict[str, int] = field(default_factory=dict)
    """Replace fields of the VLM's Gemma shape (width, depth, mlp_dim, num_heads, num_kv_heads, head_dim)."""
    expert_overrides: dict[str, int] = field(default_factory=dict)
    """Replace fields of the action expert's Gemma shape (same keys as vlm_overrides)."""
    vision_overrides: dict[str, int] = field(default_factory=dict)
    """Replace fields of the SigLIP tower (hidden_size, intermediate_size, num_hidden_layers,
    num_attention_heads, patch_size)."""
    vocab_size: int = PALIGEMMA_VOCAB_SIZE
    """Token vocabulary of the VLM (PaliGemma's 257152); must cover the tokenizer's ids."""
    tokenizer_name: str = "google/paligemma-3b-pt-224"
    """The backbone's tokenizer: a local folder or a hub repo id."""
    tokenizer_max_length: int = 48
    """Prompt tokens per sample (padded / truncated to this length)."""

    chunk_size: int = 50
    """Actions predicted per chunk (openpi's action_horizon)."""
    n_action_steps: int = 50
    """Actions executed from each chunk before predicting the next one (<= chunk_size)."""
    max_state_dim: int = 32
    """State vectors are zero-padded to this size."""
    max_action_dim: int = 32
    """Action vectors are zero-padded to this size."""
    num_inference_steps: int = 10
    """Euler steps from noise to an action chunk."""
    time_sampling_beta_alpha: float = 1.5
    """Training time ~ Beta(alpha, beta) * scale + offset."""
    time_sampling_beta_beta: float = 1.0
    """See time_sampling_beta_alpha."""
    time_sampling_scale: float = 0.999
    """See time_sampling_beta_alpha."""
    time_sampling_offset: float = 0.001
    """See time_sampling_beta_alpha."""
    min_period: float = 4e-3
    """Shortest period of the sinusoidal time embedding."""
    max_period: float = 4.0
    """Longest period of the sinusoidal time embedding."""
    image_resolution: tuple[int, int] = (224, 224)
    """Cameras are resized (keeping aspect, padded) to this (height, width); square."""
    empty_cameras: int = 0
    """Extra masked-out camera slots (for checkpoints trained with more cameras than the robot has)."""

    freeze_vision_encoder: bool = False
    """Keep SigLIP's weights fixed (and in eval mode) in training."""
    train_expert_only: bool = False
    """Keep the whole VLM fixed: train only the action expert and the projections."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass (less memory, ~30% slower)."""
    cuda_graphs: bool = True
    """On a GPU, run each chunk (prefix + every Euler step) as one captured CUDA graph (fewer launches)."""

    optimizer_lr: float = 2.5e-5
    """Peak learning rate (openpi's cosine schedule)."""
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    optimizer_eps: float = 1e-8
    """AdamW epsilon."""
    optimizer_weight_decay: float = 0.01
    """AdamW weight decay."""
    optimizer_grad_clip_norm: float = 1.0
    """Gradient norm clip."""
    scheduler_warmup_steps: int = 1_000
    """Linear warm-up steps of the cosine schedule."""
    scheduler_decay_steps: int = 30_000
    """Cosine decay steps."""
    scheduler_decay_lr: float = 2.5e-6
    """Learning rate at the end of the decay."""

    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "identity", "STATE": "mean_std", "ACTION": "mean_std"}
    )
    """Normalization per feature type; images stay in [0, 1] (SigLIP's [-1, 1] scaling happens inside)."""
    use_imagenet_stats: bool = False
    """π0 scales images itself; ImageNet stats are not used."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("paligemma_variant", "action_expert_variant"):
            if getattr(self, name) not in GEMMA_VARIANTS:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected one of {sorted(GEMMA_VARIANTS)}")
        shape_keys = {f.name for f in dataclasses.fields(GemmaShape)}
        for name in ("vlm_overrides", "expert_overrides"):
            unknown = sorted(set(getattr(self, name)) - shape_keys)
            if unknown:
                raise ValueError(f"{name} has unknown key(s) {unknown}; expected some of {sorted(shape_keys)}")
        unknown = sorted(set(self.vision_overrides) - set(SIGLIP_SO400M))
        if unknown:
            raise ValueError(f"vision_overrides has unknown key(s) {unknown}; expected some of {sorted(SIGLIP_SO400M)}")
        vlm, expert = self.vlm_shape, self.expert_shape
        for key in ("num_heads", "num_kv_heads", "head_dim", "depth"):
            if getattr(vlm, key) != getattr(expert, key):
                raise ValueError(
                    f"the VLM and the action expert attend jointly, so their {key} must match: "
                    f"VLM {getattr(vlm, key)}, expert {getattr(expert, key)}"
                )
        if vlm.num_heads % vlm.num_kv_heads:
            raise ValueError(f"num_heads={vlm.num_heads} must be a multiple of num_kv_heads={vlm.num_kv_heads}")
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps={self.n_action_steps}; expected 1..chunk_size ({self.chunk_size})")
        if len(self.image_resolution) != 2 or self.image_resolution[0] != self.image_resolution[1]:
            raise ValueError(f"image_resolution={list(self.image_resolution)}; PaliGemma expects a square (H, W)")
        patch = self.vision["patch_size"]
        if self.image_resolution[0] % patch:
            raise ValueError(f"image_resolution {self.image_resolution[0]} is not a multiple of the patch size {patch}")
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={self.num_inference_steps}; expected >= 1")
        if self.tokenizer_max_length < 1:
            raise ValueError(f"tokenizer_max_length={self.tokenizer_max_length}; expected >= 1")
        if self.n_obs_steps != 1:
            raise ValueError(f"n_obs_steps={self.n_obs_steps}; π0 uses the current observation only (1)")

    @property
    def vlm_shape(self) -> GemmaShape:
        return dataclasses.replace(GEMMA_VARIANTS[self.paligemma_variant], **self.vlm_overrides)

    @property
    def expert_shape(self) -> GemmaShape:
        return dataclasses.replace(GEMMA_VARIANTS[self.action_expert_variant], **self.expert_overrides)

    @property
    def vision(self) -> dict[str, int]:
        return {**SIGLIP_SO400M, **self.vision_overrides}

    @property
    def discrete_state(self) -> bool:
        """π0.5 writes the state into the prompt; π0 feeds it to the expert as a token."""
        return False


@dataclass(frozen=True, kw_only=True)
class PI05Config(PI0Config):
    """π0.5: the state as discrete tokens in the prompt, time through adaRMS in the action expert."""

    type = "pi05"

    tokenizer_max_length: int = 200
    """Prompt tokens per sample; the prompt holds the state too, hence longer than π0's."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "identity", "STATE": "quantiles", "ACTION": "quantiles"}
    )
    """Quantile normalization (q01..q99 -> -1..1) puts the state into the 256 bins of the prompt."""

    @property
    def discrete_state(self) -> bool:
        return True
