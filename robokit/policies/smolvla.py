"""SmolVLA (Shukor et al. 2025, "SmolVLA: A Vision-Language-Action Model for Affordable and Efficient
Robotics"): a SmolVLM2 backbone reads the cameras, the instruction and the robot state; a smaller
transformer, the action expert, turns noise into an action chunk by flow matching.

    prefix  = [camera tokens | instruction tokens | state token]   -> the VLM's text layers
    suffix  = [chunk_size noisy-action tokens (+ time)]            -> the action expert

Layer i of the expert attends to the keys/values of the VLM's layer i. Layers alternate (in the
default 'cross_attn' mode): even layers are *self-attention* over [prefix keys | own keys] (the
expert's tokens are causal among themselves), odd layers are *cross-attention* whose keys/values
are the VLM's, re-projected to the expert's width. The prefix never looks at the suffix, so its
keys/values are computed once per chunk (`PrefixCache`) and reused by all `num_steps` Euler steps
and, in training, by the single velocity prediction.

The VLM is `transformers`' SmolVLM (vision tower, connector and text layers are its modules; the
layers are driven here one by one because two token streams share each attention). The expert,
projections, time MLP, loss and sampler are written out below. Parameter names follow LeRobot's
(`model.vlm_with_expert.{vlm,lm_expert}` -> `model.{vlm,expert}`), see `lerobot_compat`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from robokit.policies import flow_matching as fm
from robokit.policies.config import register_policy
from robokit.policies.policy import Policy
from robokit.policies.smolvla_config import SmolVLAConfig

LANG_TOKENS = "observation.language.tokens"
LANG_MASK = "observation.language.attention_mask"
BACKBONE_DIR = "vlm_backbone"  # where save_pretrained puts the backbone's config and tokenizer


# ---------------------------------------------------------------------------------------------- pieces
class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 (as Llama's)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class GatedMLP(nn.Module):
    """down(silu(gate(x)) * up(x)): Llama's feed-forward."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ExpertAttention(nn.Module):
    """The projections of one expert layer; k/v read the expert's own tokens (self) or the VLM's keys/values (cross)."""

    def __init__(self, dim: int, heads: int, kv_heads: int, head_dim: int, kv_input_dim: int):
        super().__init__()
        self.head_dim = head_dim
        self.q_proj = nn.Linear(dim, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(kv_input_dim, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(kv_input_dim, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, dim, bias=False)


class ExpertLayer(nn.Module):
    def __init__(self, dim: int, hidden: int, heads: int, kv_heads: int, head_dim: int, kv_input_dim: int, eps: float):
        super().__init__()
        self.input_layernorm = RMSNorm(dim, eps)
        self.self_attn = ExpertAttention(dim, heads, kv_heads, head_dim, kv_input_dim)
        self.post_attention_layernorm = RMSNorm(dim, eps)
        self.mlp = GatedMLP(dim, hidden)


class ActionExpert(nn.Module):
    """A narrow Llama-style stack without embeddings: `layers` and the final `norm`."""

    def __init__(self, layers: list[ExpertLayer], dim: int, eps: float):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(dim, eps)


def expert_ffn_size(width: int, multiplier: int = 4, multiple_of: int = 256) -> int:
    """Feed-forward size of the expert: 2/3 * 4 * width rounded up to a multiple of 256 (SmolVLA's rule)."""
    return multiple_of * math.ceil(int(multiplier * int(2 * width / 3)) / multiple_of)


def rope_tables(positions: Tensor, head_dim: int, max_wavelength: float) -> tuple[Tensor, Tensor]:
    """(B, L) positions -> cos, sin of shape (B, L, 1, head_dim / 2), float32."""
    exponents = (2.0 / head_dim) * torch.arange(head_dim // 2, dtype=torch.float32, device=positions.device)
    radians = positions[..., None].to(torch.float32) / (max_wavelength**exponents)  # (B, L, D/2)
    return torch.cos(radians)[:, :, None], torch.sin(radians)[:, :, None]


def apply_rope(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotate the two halves of (B, L, H, D) by the position angles (in float32)."""
    cos, sin = rope
    h = x.to(torch.float32)
    x1, x2 = h.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def attention_bias(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, Lq, Lk) bool -> (B, 1, Lq, Lk) additive bias: 0 where allowed, the dtype's minimum elsewhere.

    A finite minimum (not -inf) keeps a fully masked row (a padding query) finite: it averages instead of NaN.
    """
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """q (B, Lq, H, D), k/v (B, Lk, Hkv, D) (grouped-query), bias (B, 1, Lq, Lk) -> (B, Lq, H * D)."""
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias.to(q.dtype),
        enable_gqa=k.shape[2] != q.shape[2],
    )  # (B, H, Lq, D)
    return out.transpose(1, 2).flatten(2)


def resize_with_pad(img: Tensor, width: int, height: int) -> Tensor:
    """(B, C, H, W) -> (B, C, height, width): resized keeping the aspect ratio, zero-padded on top and left."""
    h, w = img.shape[-2:]
    ratio = max(w / width, h / height)
    new_h, new_w = int(h / ratio), int(w / ratio)
    img = F.interpolate(img, size=(new_h, new_w), mode="bilinear", align_corners=False)
    return F.pad(img, (width - new_w, 0, height - new_h, 0), value=0.0)


@dataclass
class PrefixInputs:
    """A normalized observation made ready for the prefix: cameras in [-1, 1], tokens, padded state."""

    images: list[Tensor]  # n_cams x (B, C, H, W), resized and padded
    image_masks: Tensor  # (n_cams, B) bool: False for a missing / blank camera
    lang_tokens: Tensor  # (B, L) int64
    lang_mask: Tensor  # (B, L) bool
    state: Tensor  # (B, max_state_dim)
    special_tokens: Tensor | None  # (3,) ids around each camera's tokens (add_image_special_tokens)


@dataclass
class PrefixCache:
    """What the expert needs from one chunk's prefix, for every VLM layer that has an expert layer."""

    keys: dict[int, Tensor]  # layer -> (B, P, Hkv, D): the VLM's keys (self layers) or expert-projected (cross)
    values: dict[int, Tensor]  # layer -> (B, P, Hkv, D)
    pad_mask: Tensor  # (B, P) bool, valid prefix tokens
    length: Tensor  # (B, 1) number of valid prefix tokens: where the suffix's positions start


# ---------------------------------------------------------------------------------------------- model
class SmolVLAModel(nn.Module):
    """The VLM, the action expert and the projections between them: velocity(x_t, t | observation)."""

    def __init__(self, config: SmolVLAConfig, vlm_config, vlm_source: str | None = None):
        super().__init__()
        from transformers import AutoModelForImageTextToText, SmolVLMForConditionalGeneration

        self.config = config
        if vlm_source is not None:  # pretrained backbone weights (load_vlm_weights)
            self.vlm = AutoModelForImageTextToText.from_pretrained(vlm_source, torch_dtype=torch.float32)
        else:
            self.vlm = SmolVLMForConditionalGeneration(vlm_config)
        text = self.vlm.model.text_model
        if config.num_vlm_layers > 0:
            if config.num_vlm_layers > len(text.layers):
                raise ValueError(f"SmolVLAConfig: num_vlm_layers={config.num_vlm_layers} but the backbone has "
                                 f"{len(text.layers)} text layers")
            text.layers = text.layers[: config.num_vlm_layers]
        tc = self.vlm.config.text_config
        n_vlm = len(text.layers)
        n_expert = config.num_expert_layers if config.num_expert_layers > 0 else n_vlm
        if n_vlm % n_expert:
            raise ValueError(f"SmolVLAConfig: num_expert_layers={n_expert} does not divide the {n_vlm} VLM layers")
        self.width = tc.hidden_size
        self.expert_width = int(tc.hidden_size * config.expert_width_multiplier)
        self.heads, self.kv_heads, self.head_dim = tc.num_attention_heads, tc.num_key_value_heads, tc.head_dim
        kv_dim = self.kv_heads * self.head_dim
        # VLM layer i -> expert layer i // stride when i % stride == 0 (else the expert skips that layer)
        stride = n_vlm // n_expert
        self.expert_of = {i: i // stride for i in range(0, n_vlm, stride)}
        self.cross = {i: self._is_cross(i) for i in range(n_vlm)}
        for i, j in self.expert_of.items():
            if self.cross[i] != self._is_cross(j):
                raise ValueError(f"SmolVLAConfig: VLM layer {i} is {'cross' if self.cross[i] else 'self'}-attention but "
                                 f"its expert layer {j} is not; choose num_expert_layers/self_attn_every_n_layers to agree")
        layers = [ExpertLayer(self.expert_width, expert_ffn_size(self.expert_width), self.heads, self.kv_heads,
                              self.head_dim, kv_dim if self._is_cross(j) else self.expert_width, tc.rms_norm_eps)
                  for j in range(n_expert)]
        self.expert = ActionExpert(layers, self.expert_width, tc.rms_norm_eps)
        self.last_used_layer = max(self.expert_of)
        self.gradient_checkpointing = False
        self.state_proj = nn.Linear(config.max_state_dim, self.width)
        self.action_in_proj = nn.Linear(config.max_action_dim, self.expert_width)
        self.action_out_proj = nn.Linear(self.expert_width, config.max_action_dim)
        self.action_time_mlp_in = nn.Linear(2 * self.expert_width, self.expert_width)
        self.action_time_mlp_out = nn.Linear(self.expert_width, self.expert_width)

    def _is_cross(self, i: int) -> bool:
        every = self.config.self_attn_every_n_layers
        return self.config.attention_mode == "cross_attn" and not (every > 0 and i % every == 0)

    @property
    def vlm_layers(self) -> nn.ModuleList:
        return self.vlm.model.text_model.layers

    # ------------------------------------------------------------------ prefix: cameras, words, state
    def embed_images(self, images: Tensor) -> Tensor:
        """(N, C, H, W) in [-1, 1] -> (N, image_tokens, width): vision tower + connector (pixel shuffle, linear)."""
        vision = self.vlm.model.vision_model
        hidden = vision(pixel_values=images.to(vision.embeddings.patch_embedding.weight.dtype)).last_hidden_state
        return self.vlm.model.connector(hidden)

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        return self.vlm.model.text_model.get_input_embeddings()(tokens)

    def encode_cameras(self, images: list[Tensor]) -> Tensor:
        """Cameras, each (B, C, H, W) in [-1, 1] -> (n_cams, B, image_tokens, width), all through the tower at once."""
        return self.embed_images(torch.cat(images)).unflatten(0, (len(images), images[0].shape[0]))

    def embed_prefix(self, inputs: PrefixInputs, camera_embs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Camera embeddings (n_cams, B, n_img, width), tokens, state -> embeddings (B, P, width), pad (B, P), ar (B, P)."""
        state, lang_tokens, specials = inputs.state, inputs.lang_tokens, inputs.special_tokens
        batch = state.shape[0]
        scale = math.sqrt(self.width)
        embs, pads = [], []
        for emb, mask in zip(camera_embs * scale, inputs.image_masks):
            if specials is not None:  # <fake_token_around_image><global-img> ... <fake_token_around_image>
                embs.append(self.embed_tokens(specials[:2]).expand(batch, -1, -1))
                pads.append(torch.ones(batch, 2, dtype=torch.bool, device=state.device))
            embs.append(emb)
            pads.append(mask[:, None].expand(batch, emb.shape[1]))
            if specials is not None:
                embs.append(self.embed_tokens(specials[2:]).expand(batch, -1, -1))
                pads.append(torch.ones(batch, 1, dtype=torch.bool, device=state.device))
        embs.append(self.embed_tokens(lang_tokens) * scale)  # (B, L, width)
        pads.append(inputs.lang_mask)
        embs.append(self.state_proj(state.to(self.state_proj.weight.dtype))[:, None])  # (B, 1, width)
        pads.append(torch.ones(batch, 1, dtype=torch.bool, device=state.device))
        embs, pad = torch.cat(embs, dim=1), torch.cat(pads, dim=1)
        # images and words form one bidirectional block; the state token starts a new one (nothing before sees it)
        ar = torch.zeros_like(pad)
        ar[:, -1] = True
        if pad.shape[1] < self.config.prefix_length:
            extra = self.config.prefix_length - pad.shape[1]
            embs = F.pad(embs, (0, 0, 0, extra))
            pad, ar = F.pad(pad, (0, extra)), F.pad(ar, (0, extra))
        return embs, pad, ar

    def prefix_cache(self, embs: Tensor, pad: Tensor, ar: Tensor) -> PrefixCache:
        """Run the prefix (B, P, width) through the VLM's layers and keep each layer's keys/values for the expert."""
        allowed = fm.prefix_lm_mask(pad, ar)  # (B, P, P)
        positions = torch.cumsum(pad, dim=1) - 1
        rope = rope_tables(positions, self.head_dim, self.config.rope_max_wavelength)
        bias = attention_bias(allowed, embs.dtype)
        keys, values = {}, {}
        h = embs
        for i in range(self.last_used_layer + 1):  # later layers are never read by the expert
            h, keys[i], values[i] = self._checkpointed(self.prefix_layer, i, h, rope, bias)
        keys = {i: k for i, k in keys.items() if i in self.expert_of}
        values = {i: v for i, v in values.items() if i in self.expert_of}
        return PrefixCache(keys, values, pad, pad.sum(dim=1, keepdim=True))

    def prefix_layer(self, i: int, h: Tensor, rope: tuple[Tensor, Tensor], bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """VLM layer i on the prefix (B, P, width) -> the next hidden states and the keys/values the expert reads."""
        layer = self.vlm_layers[i]
        att = layer.self_attn
        x = layer.input_layernorm(h)
        k = apply_rope(att.k_proj(x).unflatten(-1, (-1, self.head_dim)), rope)  # (B, P, Hkv, D)
        v = att.v_proj(x).unflatten(-1, (-1, self.head_dim))
        expert_k, expert_v = k, v
        if i in self.expert_of and self.cross[i]:  # the expert reads them through its own k/v projections
            e = self.expert.layers[self.expert_of[i]].self_attn
            expert_k = e.k_proj(k.flatten(2).to(e.k_proj.weight.dtype)).unflatten(-1, (-1, self.head_dim))
            expert_v = e.v_proj(v.flatten(2).to(e.v_proj.weight.dtype)).unflatten(-1, (-1, self.head_dim))
        if i == self.last_used_layer:
            return h, expert_k, expert_v  # this layer's output is never read
        q = apply_rope(att.q_proj(x).unflatten(-1, (-1, self.head_dim)), rope)  # (B, P, H, D)
        h = h + att.o_proj(attend(q, k, v, bias))
        h = h + layer.mlp(layer.post_attention_layernorm(h))
        return h, expert_k, expert_v

    def _checkpointed(self, fn, *args):
        """fn(*args), its activations recomputed in backward when gradient checkpointing is on."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    # ------------------------------------------------------------------ suffix: the action expert
    def embed_suffix(self, x_t: Tensor, time: Tensor) -> Tensor:
        """Noisy actions (B, T, A) and time (B,) -> expert tokens (B, T, expert_width)."""
        action = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))  # (B, T, We)
        t = fm.sinusoidal_time_embedding(time, self.expert_width, self.config.min_period, self.config.max_period)
        t = t.to(action.dtype)[:, None].expand_as(action)  # (B, T, We)
        h = self.action_time_mlp_in(torch.cat([action, t], dim=-1))
        return self.action_time_mlp_out(F.silu(h))

    def suffix_masks(self, cache: PrefixCache, steps: int) -> dict[str, Tensor]:
        """Attention biases and RoPE tables of the expert's tokens; the same at every denoising step."""
        batch, device = cache.pad_mask.shape[0], cache.pad_mask.device
        to_prefix = cache.pad_mask[:, None, :].expand(batch, steps, -1)  # (B, T, P)
        causal = torch.ones(steps, steps, dtype=torch.bool, device=device).tril().expand(batch, -1, -1)  # (B, T, T)
        arange = torch.arange(steps, device=device)[None].expand(batch, -1)  # (B, T)
        dtype = self.action_in_proj.weight.dtype
        return {
            "self_bias": attention_bias(torch.cat([to_prefix, causal], dim=2), dtype),  # (B, 1, T, P + T)
            "cross_bias": attention_bias(to_prefix, dtype),  # (B, 1, T, P)
            # self-attention layers continue the prefix's positions; cross-attention layers count from 0
            "self_rope": rope_tables(cache.length + arange, self.head_dim, self.config.rope_max_wavelength),
            "cross_rope": rope_tables(arange, self.head_dim, self.config.rope_max_wavelength),
        }

    def velocity(self, cache: PrefixCache, masks: dict[str, Tensor], x_t: Tensor, time: Tensor) -> Tensor:
        """The expert's velocity for noisy actions x_t (B, T, A) at time (B,) -> (B, T, A)."""
        h = self.embed_suffix(x_t, time)  # (B, T, We)
        for i in self.expert_of:
            h = self._checkpointed(self.expert_layer, i, h, cache.keys[i], cache.values[i], masks)
        h = self.expert.norm(h)
        return self.action_out_proj(h.to(self.action_out_proj.weight.dtype))

    def expert_layer(self, i: int, h: Tensor, prefix_k: Tensor, prefix_v: Tensor, masks: dict[str, Tensor]) -> Tensor:
        """The expert layer beside VLM layer i on the expert's tokens (B, T, We), given that layer's prefix keys/values."""
        layer = self.expert.layers[self.expert_of[i]]
        att = layer.self_attn
        x = layer.input_layernorm(h)
        q = att.q_proj(x).unflatten(-1, (-1, self.head_dim))  # (B, T, H, D)
        if self.cross[i]:  # attend to the prefix only
            q = apply_rope(q, masks["cross_rope"])
            k, v, bias = prefix_k, prefix_v, masks["cross_bias"]
        else:  # attend to the prefix and (causally) to the expert's own tokens
            rope = masks["self_rope"]
            q = apply_rope(q, rope)
            k = apply_rope(att.k_proj(x).unflatten(-1, (-1, self.head_dim)), rope)  # (B, T, Hkv, D)
            v = att.v_proj(x).unflatten(-1, (-1, self.head_dim))
            k = torch.cat([prefix_k.to(k.dtype), k], dim=1)  # (B, P + T, Hkv, D)
            v = torch.cat([prefix_v.to(v.dtype), v], dim=1)
            bias = masks["self_bias"]
        h = h + att.o_proj(attend(q, k.to(q.dtype), v.to(q.dtype), bias))
        return h + layer.mlp(layer.post_attention_layernorm(h))

    def loss(self, cache: PrefixCache, actions: Tensor, noise: Tensor, time: Tensor) -> Tensor:
        """Flow-matching loss per element (B, T, A) for actions (B, T, A), noise (B, T, A), time (B,)."""
        x_t, target = fm.noisy_actions(actions, noise, time)
        v_t = self.velocity(cache, self.suffix_masks(cache, actions.shape[1]), x_t, time)
        return F.mse_loss(v_t.float(), target.float(), reduction="none")

    def sample(self, cache: PrefixCache, noise: Tensor, num_steps: int, on_step=None) -> Tensor:
        """Euler integration from noise (B, T, A) at t = 1 to actions at t = 0, reusing the prefix cache."""
        masks = self.suffix_masks(cache, noise.shape[1])
        return fm.euler_sample(lambda x, t: self.velocity(cache, masks, x, t), noise, num_steps, on_step)


def add_lora(text_model: nn.Module, rank: int, alpha: float) -> None:
    """LoRA adapters (peft) on the attention and MLP projections of the VLM's text layers, in place.

    Each wrapped Linear keeps its weight as `<name>.base_layer.weight` and gains `lora_A` / `lora_B`.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        from robokit.errors import install_hint

        raise ImportError(f"SmolVLA: use_lora needs peft; {install_hint('vla')}") from None
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0),
                            text_model)


class GraphedChunk:
    """On CUDA: the prefix's text layers and the whole Euler loop (16 layers x 10 steps of small kernels, which
    cost more in launches than in math) as one CUDA graph per shape, captured on first use and then replayed.

    The vision tower runs before it, eagerly (transformers' SigLIP embedding reads sizes back from the GPU,
    which a graph cannot hold). Each call copies its inputs into the captured buffers, replays, and clones
    the result. The graphs hold the weights' addresses: `clear()` them when the weights are replaced.
    """

    def __init__(self, model: SmolVLAModel):
        self.model = model
        self.graphs: dict[tuple, tuple] = {}

    def clear(self) -> None:
        self.graphs.clear()

    def __call__(self, inputs: PrefixInputs, camera_embs: Tensor, noise: Tensor, num_steps: int) -> Tensor:
        tensors = [camera_embs, inputs.image_masks, inputs.lang_tokens, inputs.lang_mask, inputs.state, noise]
        if inputs.special_tokens is not None:
            tensors.append(inputs.special_tokens)
        key = (tuple((tuple(t.shape), t.dtype) for t in tensors), num_steps, self.model.action_out_proj.weight.data_ptr())
        if key not in self.graphs:
            self.graphs[key] = self._capture(tensors, num_steps)
        static, out, graph = self.graphs[key]
        for buffer, value in zip(static, tensors):
            buffer.copy_(value)
        graph.replay()
        return out.clone()

    def _run(self, tensors: list[Tensor], num_steps: int) -> Tensor:
        camera_embs, image_masks, tokens, lang_mask, state, noise, *specials = tensors
        inputs = PrefixInputs([], image_masks, tokens, lang_mask, state, specials[0] if specials else None)
        cache = self.model.prefix_cache(*self.model.embed_prefix(inputs, camera_embs))
        return self.model.sample(cache, noise, num_steps)

    def _capture(self, tensors: list[Tensor], num_steps: int) -> tuple:
        static = [t.clone() for t in tensors]
        device = static[0].device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the graph (lazy inits, kernel selection)
            for _ in range(2):
                self._run(static, num_steps)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self._run(static, num_steps)
        return static, out, graph


# ---------------------------------------------------------------------------------------------- policy
@register_policy
class SmolVLAPolicy(Policy):
    """SmolVLA in robokit's Policy API. Observations and batches carry `"task"`: the instruction(s)."""

    config_class = SmolVLAConfig

    def __init__(self, config: SmolVLAConfig, input_features, output_features, stats=None):
        super().__init__(config, input_features, output_features, stats)
        from transformers import AutoConfig

        if not self.image_features:
            raise ValueError(f"SmolVLA needs at least one camera; the input features are {sorted(input_features)}")
        if self.state_feature is None:
            raise ValueError(f"SmolVLA needs 'observation.state'; the input features are {sorted(input_features)}")
        if self.state_feature.shape[0] > config.max_state_dim:
            raise ValueError(f"SmolVLA: observation.state has {self.state_feature.shape[0]} values, more than "
                             f"max_state_dim={config.max_state_dim}")
        if self.action_dim > config.max_action_dim:
            raise ValueError(f"SmolVLA: action has {self.action_dim} values, more than max_action_dim={config.max_action_dim}")
        source = config.vlm_model_name
        try:
            vlm_config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as err:
            raise ValueError(f"SmolVLA: cannot load the backbone config from vlm_model_name={source!r} (a folder with "
                             f"config.json and a tokenizer, or a hub id): {err}") from None
        if vlm_config.model_type != "smolvlm":
            raise ValueError(f"SmolVLA: vlm_model_name={source!r} is a {vlm_config.model_type!r} model; expected 'smolvlm'")
        self.model = SmolVLAModel(config, vlm_config, source if config.load_vlm_weights else None)
        self._tokenizer = None
        self._graphed = GraphedChunk(self.model)
        self._set_trainable()

    # ----------------------------------------------------------------- what learns
    def _set_trainable(self) -> None:
        cfg, model = self.config, self.model
        vlm = model.vlm
        if cfg.use_lora:
            add_lora(model.vlm.model.text_model, cfg.lora_rank, cfg.lora_alpha)
        for name, p in vlm.named_parameters():
            frozen = "lora_" not in name if cfg.use_lora else cfg.train_expert_only
            frozen |= cfg.freeze_vision_encoder and ".vision_model." in f".{name}"
            frozen |= not self._vlm_param_used(name)
            if frozen:
                p.requires_grad_(False)
        for p in model.state_proj.parameters():
            p.requires_grad_(cfg.train_state_proj)

    def _vlm_param_used(self, name: str) -> bool:
        """False for VLM weights that never reach the loss: the LM head, the final norm, layers after the last
        one the expert reads, and that layer's attention output and MLP (only its keys/values are read)."""
        if name.startswith(("lm_head", "model.text_model.norm")):
            return False
        if name.startswith("model.text_model.layers."):
            index, rest = name.split(".")[3], ".".join(name.split(".")[4:])
            last = self.model.last_used_layer
            if int(index) > last:
                return False
            if int(index) == last:
                return rest.startswith(("input_layernorm", "self_attn.k_proj", "self_attn.v_proj"))
        return True

    def load_weights(self, state_dict: dict[str, Tensor], source: str = "state dict") -> None:
        """As Policy.load_weights; plain backbone weights also load into LoRA-wrapped layers (`.base_layer.`)."""
        expected = set(self.state_dict())
        renamed = {}
        for key, value in state_dict.items():
            lora_key = key[: -len(".weight")] + ".base_layer.weight" if key.endswith(".weight") else key
            renamed[lora_key if key not in expected and lora_key in expected else key] = value
        if self.config.use_lora:  # adapters not in the file start as initialized (B = 0: no change to the model)
            renamed = {**{k: v for k, v in self.state_dict().items() if ".lora_" in k}, **renamed}
        super().load_weights(renamed, source)

    def to(self, *args, **kwargs) -> SmolVLAPolicy:
        self._graphed.clear()  # captured graphs point at the weights being replaced
        return super().to(*args, **kwargs)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each VLM and expert layer's activations in backward (and the vision tower's, if it trains)."""
        self.model.gradient_checkpointing = enabled
        vlm = self.model.vlm
        if enabled:
            vlm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        else:
            vlm.gradient_checkpointing_disable()

    def train(self, mode: bool = True) -> SmolVLAPolicy:
        if mode:
            self._graphed.clear()
        super().train(mode)
        if mode and self.config.train_expert_only:
            self.model.vlm.eval()
        elif mode and self.config.freeze_vision_encoder:
            self.model.vlm.model.vision_model.eval()
        return self

    # ----------------------------------------------------------------- training
    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.config.chunk_size))

    def compute_loss(self, batch: dict[str, Any], noise: Tensor | None = None,
                     time: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Normalized batch (with "task" or language tokens) -> mean flow-matching loss."""
        cache = self._prefix(batch)
        actions = fm.pad_last_dim(batch["action"], self.config.max_action_dim)  # (B, T, A_max)
        batch_size = actions.shape[0]
        if noise is None:
            noise = torch.randn(actions.shape, dtype=torch.float32, device=actions.device)
        if time is None:
            time = fm.sample_time(batch_size, actions.device)
        losses = self.model.loss(cache, actions, noise.to(actions.dtype), time)  # (B, T, A_max)
        if "action_is_pad" in batch:  # actions past the episode's end teach nothing
            losses = losses * ~batch["action_is_pad"][:, :, None]
        loss = losses.mean()
        return loss, {"loss": loss.item()}

    # ----------------------------------------------------------------- acting
    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Any], noise: Tensor | None = None, **kwargs) -> Tensor:
        """Raw observation with "task" (str or list[str], or language tokens) -> raw actions (B, chunk, action_dim).

        `noise` (B, chunk_size, max_action_dim) fixes the sampler's start; `on_step(i, t, v)` sees each velocity.
        """
        language = {k: observation[k] for k in ("task", LANG_TOKENS, LANG_MASK) if k in observation}
        return super().predict_action_chunk(observation, language=language, noise=noise, **kwargs)

    def _predict_chunk(self, obs: dict[str, Tensor], language: dict[str, Any], noise: Tensor | None = None,
                       on_step=None) -> Tensor:
        inputs = self._prefix_inputs({**obs, **language})
        camera_embs = self.model.encode_cameras(inputs.images)  # (n_cams, B, n_img, width)
        batch = inputs.state.shape[0]
        shape = (batch, self.config.chunk_size, self.config.max_action_dim)
        if noise is None:
            noise = torch.randn(shape, dtype=torch.float32, device=self.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"SmolVLA: noise has shape {tuple(noise.shape)}; expected (batch, chunk_size, "
                             f"max_action_dim) = {shape}")
        noise = noise.to(self.device, self.dtype)
        graphs = self.config.cuda_graphs and noise.device.type == "cuda" and on_step is None
        if self.config.use_cache and graphs:
            actions = self._graphed(inputs, camera_embs, noise, self.config.num_steps)
        elif self.config.use_cache:
            cache = self.model.prefix_cache(*self.model.embed_prefix(inputs, camera_embs))
            actions = self.model.sample(cache, noise, self.config.num_steps, on_step)
        else:  # the prefix recomputed at every step: slower, the reference the cached path must match
            def velocity(x: Tensor, t: Tensor) -> Tensor:
                fresh = self._prefix({**obs, **language})
                return self.model.velocity(fresh, self.model.suffix_masks(fresh, x.shape[1]), x, t)

            actions = fm.euler_sample(velocity, noise, self.config.num_steps, on_step)
        return actions[:, :, : self.action_dim]

    # ----------------------------------------------------------------- inputs
    @property
    def tokenizer(self):
        """The backbone's tokenizer (loaded on first use from vlm_model_name)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.config.vlm_model_name)
        return self._tokenizer

    def tokenize(self, tasks: str | list[str], batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """Instructions -> tokens (B, L) and mask (B, L); a newline ends each (as SmolVLA was trained)."""
        if isinstance(tasks, str):
            tasks = [tasks] * (batch_size or 1)
        if not isinstance(tasks, (list, tuple)) or not all(isinstance(t, str) for t in tasks):
            raise ValueError(f"SmolVLA: 'task' must be a str or a list of str, got {type(tasks).__name__}")
        if batch_size is not None and len(tasks) != batch_size:
            raise ValueError(f"SmolVLA: 'task' has {len(tasks)} instructions for a batch of {batch_size}")
        tasks = [t if t.endswith("\n") else t + "\n" for t in tasks]
        out = self.tokenizer(tasks, padding=self.config.pad_language_to, max_length=self.config.tokenizer_max_length,
                             truncation=True, padding_side="right", return_tensors="pt")
        return out["input_ids"].to(self.device), out["attention_mask"].to(self.device, torch.bool)

    def _prefix(self, batch: dict[str, Any]) -> PrefixCache:
        """Normalized batch -> the prefix's keys/values (cameras, instruction, state)."""
        inputs = self._prefix_inputs(batch)
        return self.model.prefix_cache(*self.model.embed_prefix(inputs, self.model.encode_cameras(inputs.images)))

    def _prefix_inputs(self, batch: dict[str, Any]) -> PrefixInputs:
        """Normalized batch -> cameras resized to [-1, 1], instruction tokens, padded state."""
        state = batch["observation.state"]
        state = state[:, -1] if state.ndim > 2 else state  # (B, S)
        batch_size = state.shape[0]
        if LANG_TOKENS in batch:
            tokens, mask = batch[LANG_TOKENS].to(self.device), batch[LANG_MASK].to(self.device, torch.bool)
        elif "task" in batch:
            tokens, mask = self.tokenize(batch["task"], batch_size)
        else:
            raise KeyError("SmolVLA: the batch/observation has no 'task' (the instruction, str or list[str])")
        images, masks = [], []
        for key in self.image_features:
            img = batch[key]
            img = img[:, -1] if img.ndim == 5 else img  # (B, C, H, W) in [0, 1]
            if self.config.resize_imgs_with_padding is not None:
                img = resize_with_pad(img, *self.config.resize_imgs_with_padding)
            images.append(img * 2.0 - 1.0)  # SigLIP's [-1, 1]
            pad_key = f"{key}_padding_mask"
            masks.append(batch[pad_key].bool() if pad_key in batch else
                         torch.ones(batch_size, dtype=torch.bool, device=img.device))
        for _ in range(self.config.empty_cameras):  # blank slots, masked out
            images.append(torch.full_like(images[-1], -1.0))
            masks.append(torch.zeros_like(masks[-1]))
        specials = None
        if self.config.add_image_special_tokens:
            ids = [self.tokenizer.convert_tokens_to_ids(t) for t in ("<fake_token_around_image>", "<global-img>")]
            specials = torch.tensor([ids[0], ids[1], ids[0]], device=self.device)
        state = fm.pad_last_dim(state, self.config.max_state_dim)
        return PrefixInputs(images, torch.stack(masks), tokens, mask, state, specials)

    # ----------------------------------------------------------------- saving
    def config_dict(self) -> dict[str, Any]:
        out = super().config_dict()
        out["vlm_model_name"] = BACKBONE_DIR  # saved beside the weights (relative: resolved against the folder)
        out["load_vlm_weights"] = False  # model.safetensors holds the backbone's weights
        return out

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """config.json + model.safetensors + normalization stats, and the backbone's config and tokenizer."""
        directory = super().save_pretrained(directory)
        self.model.vlm.config.save_pretrained(directory / BACKBONE_DIR)
        self.tokenizer.save_pretrained(directory / BACKBONE_DIR)
        return directory
