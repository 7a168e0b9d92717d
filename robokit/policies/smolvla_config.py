"""SmolVLA's hyperparameters (policy type `smolvla`). Field names and defaults are LeRobot's, so
that its `config.json` files load as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from robokit.policies.config import PolicyConfig

ATTENTION_MODES = ("cross_attn", "self_attn")
LANGUAGE_PADDING = ("longest", "max_length")


@dataclass(frozen=True, kw_only=True)
class SmolVLAConfig(PolicyConfig):
    """SmolVLA (Shukor et al. 2025): a SmolVLM2 backbone plus a flow-matching action expert."""

    type = "smolvla"
    path_fields: ClassVar[tuple[str, ...]] = ("vlm_model_name",)

    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "identity", "STATE": "mean_std", "ACTION": "mean_std"}
    )
    """Normalization per feature type; images stay in [0, 1] (the model maps them to [-1, 1] itself)."""
    use_imagenet_stats: bool = False
    """Cameras are not normalized with ImageNet stats (SigLIP expects [-1, 1] pixels)."""
    chunk_size: int = 50
    """Actions predicted per chunk."""
    n_action_steps: int = 50
    """Actions executed from each chunk before predicting the next one (<= chunk_size)."""
    max_state_dim: int = 32
    """State vectors are zero-padded to this size (one checkpoint serves several robots)."""
    max_action_dim: int = 32
    """Action vectors are zero-padded to this size; predictions are cut back to the action size."""
    resize_imgs_with_padding: tuple[int, int] | None = (512, 512)
    """Cameras are resized to (width, height) keeping their aspect ratio, padded with black on top/left."""
    empty_cameras: int = 0
    """Blank, masked-out camera slots added after the real cameras (checkpoints trained with more cameras)."""
    adapt_to_pi_aloha: bool = False
    """LeRobot's conversion to the pi runtime's ALOHA joint space (not supported by robokit)."""
    use_delta_joint_actions_aloha: bool = False
    """Not supported (not implemented by LeRobot either)."""
    tokenizer_max_length: int = 48
    """Instructions are cut to this many tokens."""
    pad_language_to: str = "longest"
    """Pad the instructions of a batch to the 'longest' one or to 'max_length'."""
    num_steps: int = 10
    """Euler steps of the flow-matching sampler."""
    use_cache: bool = True
    """Compute the image + language + state prefix once per chunk and reuse its keys/values at every step."""
    cuda_graphs: bool = True
    """On CUDA, run the Euler loop as a CUDA graph (captured once per batch size and prefix length)."""
    freeze_vision_encoder: bool = True
    """Keep the vision encoder frozen (and in eval mode) during training."""
    train_expert_only: bool = True
    """Freeze the whole VLM: only the action expert and the projections learn."""
    train_state_proj: bool = True
    """Train the state projection (it feeds the VLM prefix)."""
    use_lora: bool = False
    """LoRA adapters (peft) on the VLM's text layers; the VLM's own weights stay frozen."""
    lora_rank: int = 16
    """LoRA rank."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator (scale = alpha / rank)."""
    optimizer_lr: float = 1e-4
    """Learning rate."""
    optimizer_betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas (LeRobot's preset; robokit's trainer uses its own)."""
    optimizer_eps: float = 1e-8
    """AdamW epsilon (LeRobot's preset)."""
    optimizer_weight_decay: float = 1e-10
    """AdamW weight decay."""
    optimizer_grad_clip_norm: float = 10.0
    """Gradient clipping norm (LeRobot's preset)."""
    scheduler_warmup_steps: int = 1_000
    """Warm-up steps of LeRobot's cosine schedule."""
    scheduler_decay_steps: int = 30_000
    """Decay steps of LeRobot's cosine schedule."""
    scheduler_decay_lr: float = 2.5e-6
    """Final learning rate of LeRobot's cosine schedule."""
    vlm_model_name: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    """The backbone: a hub id or a folder with its config.json and tokenizer (relative: to the checkpoint)."""
    load_vlm_weights: bool = False
    """Start from the backbone's pretrained weights (downloaded); False = random init (or a checkpoint's)."""
    add_image_special_tokens: bool = False
    """Wrap each camera's tokens in <fake_token_around_image><global-img> ... <fake_token_around_image>."""
    attention_mode: str = "cross_attn"
    """'cross_attn': expert layers alternate self-attention and cross-attention to the VLM; 'self_attn': all joint."""
    prefix_length: int = -1
    """Pad the prefix to this many tokens (<= 0: no padding)."""
    num_expert_layers: int = -1
    """Expert layers (<= 0: one per VLM layer; else a divisor of num_vlm_layers)."""
    num_vlm_layers: int = 16
    """The first num_vlm_layers text layers of the VLM are used (<= 0: all)."""
    self_attn_every_n_layers: int = 2
    """In cross_attn mode, every n-th layer (0, n, 2n, ...) is a self-attention layer."""
    expert_width_multiplier: float = 0.75
    """Expert width relative to the VLM's hidden size."""
    min_period: float = 4e-3
    """Smallest period of the sinusoidal time embedding."""
    max_period: float = 4.0
    """Largest period of the sinusoidal time embedding."""
    rope_max_wavelength: float = 10_000.0
    """RoPE base of the VLM+expert attention (LeRobot's SmolVLA uses 10000 whatever the backbone config says)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_action_steps > self.chunk_size:
            raise ValueError(f"SmolVLAConfig: n_action_steps={self.n_action_steps} must be <= chunk_size={self.chunk_size}")
        for name in ("chunk_size", "n_action_steps", "max_state_dim", "max_action_dim", "num_steps",
                     "tokenizer_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"SmolVLAConfig: {name}={getattr(self, name)} must be >= 1")
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"SmolVLAConfig: attention_mode={self.attention_mode!r}; expected one of {ATTENTION_MODES}")
        if self.pad_language_to not in LANGUAGE_PADDING:
            raise ValueError(f"SmolVLAConfig: pad_language_to={self.pad_language_to!r}; expected one of {LANGUAGE_PADDING}")
        if self.adapt_to_pi_aloha or self.use_delta_joint_actions_aloha:
            raise ValueError("SmolVLAConfig: adapt_to_pi_aloha / use_delta_joint_actions_aloha are not supported by robokit")
        if self.resize_imgs_with_padding is not None and len(self.resize_imgs_with_padding) != 2:
            raise ValueError(f"SmolVLAConfig: resize_imgs_with_padding={self.resize_imgs_with_padding}; "
                             "expected (width, height) or None")
        if not self.expert_width_multiplier > 0:
            raise ValueError(f"SmolVLAConfig: expert_width_multiplier={self.expert_width_multiplier} must be > 0")
