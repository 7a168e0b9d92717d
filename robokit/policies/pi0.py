"""π0 and π0.5: a PaliGemma vision-language model plus a Gemma action expert, trained with flow matching
(Black et al. 2024, "π0: A Vision-Language-Action Flow Model for General Robot Control"; Physical
Intelligence 2025, "π0.5: a Vision-Language-Action Model with Open-World Generalization").

The prefix (SigLIP image tokens, then the tokenized instruction) goes through PaliGemma's Gemma; the
suffix (π0: a state token and the noisy action tokens; π0.5: the action tokens only) goes through a
smaller Gemma, the action expert. Both run their layers together: at each layer each stream computes
q/k/v with its own weights, every query attends over the concatenated keys/values under the prefix-LM
mask (the prefix never sees the suffix), and each stream has its own o_proj and MLP. Acting computes the
prefix once per chunk and reuses its keys/values for every Euler step.

π0 embeds the time (sinusoid) beside each action token through `action_time_mlp_in/out`; π0.5 writes the
state into the prompt as 256-bin tokens and conditions the expert on time through adaRMS: its RMSNorms
take scale, shift and a residual gate from `time_mlp_out(time_mlp_in(sinusoid))`.

The backbone modules are transformers' (`PaliGemmaForConditionalGeneration`, `GemmaForCausalLM`); the
joint layer loop, the projections and the sampler are here. Parameter names equal LeRobot 0.4.4's
(`model.paligemma_with_expert.paligemma...`, `model.action_in_proj.weight`, ...), so its π0 / π0.5
checkpoints load unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from robokit.policies.config import register_policy
from robokit.policies.flow_matching import (
    euler_sample,
    noisy_actions,
    pad_last_dim,
    prefix_lm_mask,
    sample_time,
    sinusoidal_time_embedding,
)
from robokit.policies.pi0_config import PI0Config, PI05Config
from robokit.policies.policy import CONFIG_NAME, Policy

# The additive mask value of openpi / LeRobot: finite, so a fully masked query row (a padding token)
# gets a uniform softmax instead of NaN.
MASKED = -2.3819763e38
STATE_BINS = 256
TOKENIZER_DIR = "tokenizer"


def _transformers():
    try:
        import transformers
    except ImportError:
        from robokit.errors import install_hint

        raise ImportError(
            f"π0 / π0.5 need the `transformers` package: {install_hint('vla')}"
        ) from None
    return transformers


# ----------------------------------------------------------------------------------------------- layers
class AdaRMSNorm(nn.Module):
    """Gemma RMSNorm whose scale, shift and residual gate come from a conditioning vector (π0.5's time).

    `dense` is openpi's name (Linear(cond_dim, 3 * dim) with bias); zero-initialized as in openpi's JAX
    model, so the modulation starts at scale = shift = gate = 0.
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.dense = nn.Linear(cond_dim, 3 * dim)
        nn.init.zeros_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, L, D), cond (B, cond_dim) -> normalized x (B, L, D) and the gate (B, 1, D)."""
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        scale, shift, gate = self.dense(cond.to(self.dense.weight.dtype)).unsqueeze(1).chunk(3, dim=-1)
        return (normed * (1 + scale.float()) + shift.float()).to(x.dtype), gate.to(x.dtype)


def _norm(norm: nn.Module, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if isinstance(norm, AdaRMSNorm):
        if cond is None:
            raise ValueError("the action expert's adaRMS norms need the time conditioning vector")
        return norm(x, cond)
    return norm(x), None


def _residual(x: Tensor, y: Tensor, gate: Tensor | None) -> Tensor:
    return x + y if gate is None else x + y * gate


class PaliGemmaWithExpert(nn.Module):
    """PaliGemma (SigLIP + Gemma) and the action expert (a Gemma without token embeddings), layer by layer."""

    def __init__(self, config: PI0Config):
        super().__init__()
        tf = _transformers()
        vlm, expert, vision = config.vlm_shape, config.expert_shape, config.vision
        text = {
            "hidden_size": vlm.width, "intermediate_size": vlm.mlp_dim, "num_hidden_layers": vlm.depth,
            "num_attention_heads": vlm.num_heads, "num_key_value_heads": vlm.num_kv_heads,
            "head_dim": vlm.head_dim, "hidden_activation": "gelu_pytorch_tanh", "vocab_size": config.vocab_size,
        }
        siglip = {**vision, "image_size": config.image_resolution[0], "projector_hidden_act": "gelu_fast",
                  "vision_use_head": False}
        self.paligemma = tf.PaliGemmaForConditionalGeneration(tf.PaliGemmaConfig(
            text_config=text, vision_config=siglip, image_token_index=config.vocab_size,
            vocab_size=config.vocab_size, projection_dim=vlm.width, hidden_size=vlm.width,
        ))
        self.gemma_expert = tf.GemmaForCausalLM(tf.GemmaConfig(
            hidden_size=expert.width, intermediate_size=expert.mlp_dim, num_hidden_layers=expert.depth,
            num_attention_heads=expert.num_heads, num_key_value_heads=expert.num_kv_heads,
            head_dim=expert.head_dim, hidden_activation="gelu_pytorch_tanh", vocab_size=config.vocab_size,
        ))
        self.gemma_expert.model.embed_tokens = None  # the expert reads embeddings, never token ids
        if config.discrete_state:  # π0.5: adaRMS norms in the expert, conditioned on the time embedding
            eps = self.gemma_expert.config.rms_norm_eps
            for layer in self.gemma_expert.model.layers:
                layer.input_layernorm = AdaRMSNorm(expert.width, expert.width, eps)
                layer.post_attention_layernorm = AdaRMSNorm(expert.width, expert.width, eps)
            self.gemma_expert.model.norm = AdaRMSNorm(expert.width, expert.width, eps)
        self.num_heads, self.head_dim = vlm.num_heads, vlm.head_dim
        self.gradient_checkpointing = config.gradient_checkpointing

    @property
    def vlm(self) -> nn.Module:
        return self.paligemma.model.language_model

    @property
    def expert(self) -> nn.Module:
        return self.gemma_expert.model

    def embed_images(self, pixels: Tensor) -> Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, patches, vlm width): SigLIP, then the linear projector.

        Unlike transformers' `get_image_features`, no division by sqrt(width): π0 feeds the projector's
        output to Gemma as is and scales only the text embeddings (openpi's patched PaliGemma does the same).
        """
        tower = self.paligemma.model.vision_tower
        features = tower(pixel_values=pixels.to(tower.dtype)).last_hidden_state
        return self.paligemma.model.multi_modal_projector(features)

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """(B, L) ids -> (B, L, vlm width), scaled by sqrt(width) as Gemma does."""
        emb = self.vlm.embed_tokens(tokens)
        return emb * math.sqrt(emb.shape[-1])

    def forward(
        self,
        prefix: Tensor | None,
        suffix: Tensor | None,
        attention: Tensor,
        position_ids: Tensor,
        adarms_cond: Tensor | None = None,
        cache: list[tuple[Tensor, Tensor]] | None = None,
        keep_cache: bool = False,
    ) -> tuple[Tensor | None, Tensor | None, list[tuple[Tensor, Tensor]] | None]:
        """Run the layers on the prefix (B, Lp, Dv) and/or the suffix (B, Ls, De) together.

        attention (B, Lq, Lk) bool: may query i see key j, keys = [cached keys, prefix, suffix];
        position_ids (B, Lq) for the rotary embedding. `cache` holds each layer's prefix (k, v) from an
        earlier `keep_cache=True` call on the prefix alone. Returns the final-normed prefix and suffix
        states and, with keep_cache, each layer's (k, v) of this call.
        """
        hidden = [prefix, suffix]
        conds = [None, adarms_cond]
        ref = prefix if prefix is not None else suffix
        cos, sin = self.vlm.rotary_emb(ref, position_ids)  # (B, Lq, head_dim) each
        bias = torch.zeros(attention.shape, dtype=ref.dtype, device=ref.device).masked_fill(~attention, MASKED)
        bias = bias[:, None]  # (B, 1, Lq, Lk): the same mask for every head
        new_cache: list[tuple[Tensor, Tensor]] | None = [] if keep_cache else None
        for idx in range(len(self.vlm.layers)):
            past = cache[idx] if cache is not None else None
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden, kv = checkpoint(self._layer, idx, hidden, conds, cos, sin, bias, past, use_reentrant=False)
            else:
                hidden, kv = self._layer(idx, hidden, conds, cos, sin, bias, past)
            if new_cache is not None:
                new_cache.append(kv)
        models = (self.vlm, self.expert)
        out = [None if x is None else _norm(models[i].norm, x, conds[i])[0] for i, x in enumerate(hidden)]
        return out[0], out[1], new_cache

    def _layer(self, idx: int, hidden: list[Tensor | None], conds: list[Tensor | None], cos: Tensor, sin: Tensor,
               bias: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
        apply_rotary = _transformers().models.gemma.modeling_gemma.apply_rotary_pos_emb
        layers = (self.vlm.layers[idx], self.expert.layers[idx])
        qs, ks, vs, gates, lengths = [], [], [], [], []
        for i, x in enumerate(hidden):
            if x is None:
                gates.append(None)
                continue
            attn = layers[i].self_attn
            h, gate = _norm(layers[i].input_layernorm, x, conds[i])
            b, n, _ = h.shape
            qs.append(attn.q_proj(h).view(b, n, -1, self.head_dim).transpose(1, 2))  # (B, H, n, hd)
            ks.append(attn.k_proj(h).view(b, n, -1, self.head_dim).transpose(1, 2))  # (B, KV, n, hd)
            vs.append(attn.v_proj(h).view(b, n, -1, self.head_dim).transpose(1, 2))
            gates.append(gate)
            lengths.append(n)
        q, k, v = torch.cat(qs, dim=2), torch.cat(ks, dim=2), torch.cat(vs, dim=2)
        q, k = apply_rotary(q, k, cos, sin)
        kv = (k, v)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        groups = q.shape[1] // k.shape[1]  # grouped-query attention: each kv head serves `groups` query heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.head_dim**-0.5)
        out = out.transpose(1, 2).flatten(2)  # (B, Lq, H * hd)
        pieces = iter(out.split(lengths, dim=1))
        result: list[Tensor | None] = []
        for i, x in enumerate(hidden):
            if x is None:
                result.append(None)
                continue
            layer = layers[i]
            y = layer.self_attn.o_proj(next(pieces).to(layer.self_attn.o_proj.weight.dtype))
            x = _residual(x, y, gates[i])
            h, gate = _norm(layer.post_attention_layernorm, x, conds[i])
            result.append(_residual(x, layer.mlp(h), gate))
        return result, kv


# ------------------------------------------------------------------------------------------------ model
class PI0Model(nn.Module):
    """Prefix and suffix embeddings, the flow-matching loss and the Euler sampler around PaliGemmaWithExpert."""

    def __init__(self, config: PI0Config):
        super().__init__()
        self.config = config
        width = config.expert_shape.width
        self.paligemma_with_expert = PaliGemmaWithExpert(config)
        self.action_in_proj = nn.Linear(config.max_action_dim, width)
        self.action_out_proj = nn.Linear(width, config.max_action_dim)
        if config.discrete_state:
            self.time_mlp_in = nn.Linear(width, width)
            self.time_mlp_out = nn.Linear(width, width)
        else:
            self.state_proj = nn.Linear(config.max_state_dim, width)
            self.action_time_mlp_in = nn.Linear(2 * width, width)
            self.action_time_mlp_out = nn.Linear(width, width)

    @property
    def dtype(self) -> torch.dtype:
        return self.action_in_proj.weight.dtype

    def embed_prefix(self, images: list[Tensor], image_masks: list[Tensor], tokens: Tensor,
                     token_masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Cameras [(B, 3, H, W) in [-1, 1]], their (B,) validity, prompt (B, L) -> embeddings (B, Lp, Dv),
        validity (B, Lp) and block starts (B, Lp): one bidirectional block."""
        b = tokens.shape[0]
        pwe = self.paligemma_with_expert
        image_emb = pwe.embed_images(torch.cat(images, dim=0)).to(self.dtype)  # (n_cams * B, P, Dv)
        embs = list(image_emb.split(b, dim=0)) + [pwe.embed_tokens(tokens).to(self.dtype)]
        pads = [m[:, None].expand(b, e.shape[1]) for m, e in zip(image_masks, embs)] + [token_masks]
        embs, pads = torch.cat(embs, dim=1), torch.cat(pads, dim=1)  # (B, n_cams * P + L, Dv)
        return embs, pads, torch.zeros_like(pads)

    def embed_suffix(self, state: Tensor | None, x_t: Tensor, time: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(B, S) state (π0), (B, T, A) noisy actions, (B,) time -> embeddings (B, Ls, De), validity,
        block starts (the state and the first action token each open a block) and the adaRMS condition."""
        cfg = self.config
        time_emb = sinusoidal_time_embedding(time, self.action_in_proj.out_features, cfg.min_period,
                                             cfg.max_period).to(self.dtype)  # (B, De)
        action_emb = self.action_in_proj(x_t.to(self.dtype))  # (B, T, De)
        b, t = action_emb.shape[:2]
        if cfg.discrete_state:
            cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(time_emb))))  # (B, De)
            embs, n_starts = action_emb, 1  # one causal block: the action tokens
        else:
            cond = None
            fused = torch.cat([action_emb, time_emb[:, None].expand(b, t, -1)], dim=2)  # (B, T, 2 De)
            fused = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(fused)))
            state_emb = self.state_proj(state.to(self.dtype))[:, None]  # (B, 1, De)
            embs, n_starts = torch.cat([state_emb, fused], dim=1), 2  # two blocks: the state, then the actions
        pads = torch.ones(embs.shape[:2], dtype=torch.bool, device=embs.device)
        ar = torch.zeros_like(pads)  # built on the device (no host copy: the chunk can run as one CUDA graph)
        ar[:, :n_starts] = True
        return embs, pads, ar, cond

    def velocity_joint(self, prefix: tuple[Tensor, Tensor, Tensor], state: Tensor | None, x_t: Tensor,
                       time: Tensor) -> Tensor:
        """One pass over prefix and suffix together -> velocity (B, T, max_action_dim) (training)."""
        embs, pads, ar = prefix
        s_embs, s_pads, s_ar, cond = self.embed_suffix(state, x_t, time)
        pad = torch.cat([pads, s_pads], dim=1)
        mask = prefix_lm_mask(pad, torch.cat([ar, s_ar], dim=1))
        positions = torch.cumsum(pad, dim=1) - 1
        _, out, _ = self.paligemma_with_expert(embs, s_embs, mask, positions, adarms_cond=cond)
        return self.action_out_proj(out[:, -self.config.chunk_size:].to(self.action_out_proj.weight.dtype))

    def prefix_cache(self, prefix: tuple[Tensor, Tensor, Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Each layer's prefix keys/values (B, KV, Lp, hd), computed once per chunk."""
        embs, pads, ar = prefix
        mask = prefix_lm_mask(pads, ar)
        _, _, cache = self.paligemma_with_expert(embs, None, mask, torch.cumsum(pads, dim=1) - 1, keep_cache=True)
        return cache

    def velocity_cached(self, prefix_pads: Tensor, cache: list[tuple[Tensor, Tensor]], state: Tensor | None,
                        x_t: Tensor, time: Tensor) -> Tensor:
        """The suffix alone, attending to the cached prefix -> velocity (B, T, max_action_dim)."""
        s_embs, s_pads, s_ar, cond = self.embed_suffix(state, x_t, time)
        b, ls = s_pads.shape
        mask = torch.cat([prefix_pads[:, None, :].expand(b, ls, -1), prefix_lm_mask(s_pads, s_ar)], dim=2)
        positions = prefix_pads.sum(dim=1, keepdim=True) + torch.cumsum(s_pads, dim=1) - 1
        _, out, _ = self.paligemma_with_expert(None, s_embs, mask, positions, adarms_cond=cond, cache=cache)
        return self.action_out_proj(out[:, -self.config.chunk_size:].to(self.action_out_proj.weight.dtype))

    def loss(self, prefix: tuple[Tensor, Tensor, Tensor], state: Tensor | None, actions: Tensor, noise: Tensor,
             time: Tensor) -> Tensor:
        """Per-element squared error of the predicted velocity (B, T, max_action_dim)."""
        x_t, target = noisy_actions(actions, noise, time)
        v_t = self.velocity_joint(prefix, state, x_t, time)
        return F.mse_loss(v_t.float(), target.float(), reduction="none")

    def sample(self, prefix: tuple[Tensor, Tensor, Tensor], state: Tensor | None, noise: Tensor, num_steps: int,
               use_kv_cache: bool = True) -> Tensor:
        """Euler integration from noise (t = 1) to actions (t = 0) -> (B, T, max_action_dim).

        With use_kv_cache the prefix runs once; without, every step recomputes it (a check of the cache)."""
        if use_kv_cache:
            cache = self.prefix_cache(prefix)
            return euler_sample(lambda x, t: self.velocity_cached(prefix[1], cache, state, x, t), noise, num_steps)
        return euler_sample(lambda x, t: self.velocity_joint(prefix, state, x, t), noise, num_steps)


# ----------------------------------------------------------------------------------------------- inputs
def resize_with_pad(images: Tensor, height: int, width: int) -> Tensor:
    """(B, C, h, w) in [-1, 1] -> (B, C, height, width): scaled to fit keeping the aspect, centered, padded
    with -1 (black), as openpi's preprocessing does."""
    h, w = images.shape[-2:]
    if (h, w) == (height, width):
        return images
    ratio = max(w / width, h / height)
    new_h, new_w = int(h / ratio), int(w / ratio)
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False).clamp(-1, 1)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return F.pad(resized, (left, width - new_w - left, top, height - new_h - top), value=-1.0)


def discretize_state(state: Tensor) -> Tensor:
    """Normalized state (B, S) in [-1, 1] -> bin indices (B, S) in 0..255 (np.digitize over 256 equal bins
    of [-1, 1], minus one, as openpi's tokenizer; values below -1 give -1, above 1 give 255)."""
    edges = torch.linspace(-1.0, 1.0, STATE_BINS + 1, dtype=torch.float64, device=state.device)[:-1]
    return torch.bucketize(state.double(), edges, right=True) - 1


def pi05_prompt(task: str, bins: list[int]) -> str:
    """π0.5's prompt: the cleaned task, then the discretized state."""
    text = task.strip().replace("_", " ").replace("\n", " ")
    return f"Task: {text}, State: {' '.join(str(int(b)) for b in bins)};\nAction: "


class ChunkGraphs:
    """One CUDA graph per input shape for a whole chunk (prefix, KV cache and every Euler step): a replay
    launches the ~thousands of small kernels of a chunk at once instead of one Python call each.

    The graph reads the parameters' storage, so in-place updates (an optimizer step, load_state_dict) are
    seen; a new dtype or device makes new storage and a new key.
    """

    def __init__(self) -> None:
        self._graphs: dict[tuple, tuple[list[Tensor], Any, Tensor]] = {}

    def clear(self) -> None:
        self._graphs.clear()

    def run(self, fn, inputs: list[Tensor], key: tuple) -> Tensor:
        key = (*key, tuple((tuple(x.shape), x.dtype, x.device) for x in inputs))
        entry = self._graphs.get(key)
        if entry is None:
            static = [x.clone() for x in inputs]
            side = torch.cuda.Stream(device=inputs[0].device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up outside the graph (library handles, workspaces)
                    fn(*static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = fn(*static)
            entry = self._graphs[key] = (static, graph, out)
        static, graph, out = entry
        for buffer, x in zip(static, inputs):
            buffer.copy_(x)
        graph.replay()
        return out.clone()


# PaliGemma's parameter names before transformers 4.52 -> now (as transformers' own checkpoint conversion maps them).
_PG = "model.paligemma_with_expert.paligemma."
_OLD_PALIGEMMA_LAYOUT = (
    (_PG + "language_model.model.", _PG + "model.language_model."),
    (_PG + "language_model.lm_head.", _PG + "lm_head."),
    (_PG + "vision_tower.", _PG + "model.vision_tower."),
    (_PG + "multi_modal_projector.", _PG + "model.multi_modal_projector."),
)


# ----------------------------------------------------------------------------------------------- policy
@register_policy
class PI0Policy(Policy):
    """π0 in robokit's Policy API. Observations carry `"task"` (a str for the whole batch, or one per sample)."""

    config_class = PI0Config
    config: PI0Config

    def __init__(self, config: PI0Config, input_features, output_features, stats=None):
        super().__init__(config, input_features, output_features, stats)
        name = type(self).__name__
        if not self.image_features and config.empty_cameras == 0:
            raise ValueError(f"{name} needs at least one camera feature (observation.images.*); got {sorted(input_features)}")
        state = self.state_feature
        if state is not None and state.shape[0] > config.max_state_dim:
            raise ValueError(f"{name}: 'observation.state' has {state.shape[0]} values; max_state_dim is {config.max_state_dim}")
        if self.action_dim > config.max_action_dim:
            raise ValueError(f"{name}: 'action' has {self.action_dim} values; max_action_dim is {config.max_action_dim}")
        for key in self.image_features:
            if self.input_features[key].shape[0] != 3:
                raise ValueError(f"{name}: camera {key!r} has shape {self.input_features[key].shape}; expected 3 channels")
        self.model = PI0Model(config)
        self._tokenizer = None
        self._graphs = ChunkGraphs()
        self._freeze()

    # ------------------------------------------------------------------- set-up
    def _frozen_modules(self) -> list[nn.Module]:
        paligemma = self.model.paligemma_with_expert.paligemma
        if self.config.train_expert_only:
            return [paligemma]
        if self.config.freeze_vision_encoder:
            return [paligemma.model.vision_tower]
        return []

    def _freeze(self) -> None:
        for module in self._frozen_modules():
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> PI0Policy:
        super().train(mode)
        if mode:
            self._graphs.clear()  # free the graphs' memory pools while training
        for module in self._frozen_modules():
            module.train(False)
        return self

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute each joint layer in backward (the trainer's --gradient-checkpointing)."""
        self.model.paligemma_with_expert.gradient_checkpointing = bool(enabled)

    def fsdp_units(self) -> list[nn.Module]:
        """FSDP units: modules whose own forward runs (FSDP gathers a unit's weights in its forward hook).
        The joint loop calls each Gemma layer's projections, norms and MLP, not the layer's forward, so those
        are the units; SigLIP's encoder layers run whole. The rest (embeddings, projectors) is the root's."""
        pwe = self.model.paligemma_with_expert
        units: list[nn.Module] = list(pwe.paligemma.model.vision_tower.vision_model.encoder.layers)
        for gemma in (pwe.vlm, pwe.expert):
            for layer in gemma.layers:
                attn = layer.self_attn
                units += [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, layer.mlp]
        return units

    @property
    def tokenizer(self):
        """The backbone's tokenizer (`config.tokenizer_name`: a local folder or a hub id), loaded on first use."""
        if self._tokenizer is None:
            tf = _transformers()
            try:
                tokenizer = tf.AutoTokenizer.from_pretrained(self.config.tokenizer_name)
            except (OSError, ValueError) as err:
                raise FileNotFoundError(
                    f"{type(self).__name__}: cannot load the tokenizer tokenizer_name={self.config.tokenizer_name!r} "
                    f"(a local folder or a hub repo id): {err}"
                ) from None
            if tokenizer.pad_token_id is None:
                raise ValueError(f"tokenizer {self.config.tokenizer_name!r} has no padding token")
            if len(tokenizer) > self.config.vocab_size:
                raise ValueError(f"tokenizer {self.config.tokenizer_name!r} has {len(tokenizer)} tokens; "
                                 f"the model's vocab_size is {self.config.vocab_size}")
            self._tokenizer = tokenizer
        return self._tokenizer

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.config.chunk_size))

    # ------------------------------------------------------------------- inputs
    def prompts(self, task: Any, state: Tensor | None, batch_size: int) -> list[str]:
        """The text each sample's prefix holds. π0: the task ending in a newline. π0.5: task and
        discretized state (`state` is the normalized state, (B, S))."""
        if task is None:
            raise KeyError(f"{type(self).__name__}: the batch has no 'task' (the instruction: a str or a list of str)")
        tasks = [task] * batch_size if isinstance(task, str) else list(task)
        if len(tasks) != batch_size or not all(isinstance(t, str) for t in tasks):
            raise ValueError(f"{type(self).__name__}: 'task' must be a str or {batch_size} str (one per sample); "
                             f"got {task!r}")
        if not self.config.discrete_state:
            return [t if t.endswith("\n") else t + "\n" for t in tasks]
        bins = discretize_state(self._padded_state(state, batch_size)).tolist()
        return [pi05_prompt(t, row) for t, row in zip(tasks, bins)]

    def tokenize(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Prompts -> token ids (B, L) and their validity (B, L), right-padded to tokenizer_max_length."""
        enc = self.tokenizer(prompts, max_length=self.config.tokenizer_max_length, truncation=True,
                             padding="max_length", padding_side="right", return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device, torch.bool)

    def _padded_state(self, state: Tensor | None, batch_size: int) -> Tensor:
        if state is None:  # no state feature: zeros
            return torch.zeros(batch_size, self.config.max_state_dim, device=self.device)
        return pad_last_dim(state.float(), self.config.max_state_dim)

    def _images(self, batch: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Cameras (B, 3, H, W) in [0, 1] -> [-1, 1] at image_resolution, plus masked empty-camera slots."""
        size = self.config.image_resolution
        images, masks = [], []
        for key in self.image_features:
            img = batch[key]
            img = resize_with_pad(img.float() * 2.0 - 1.0, *size).to(self.model.dtype)
            images.append(img)
            masks.append(torch.ones(img.shape[0], dtype=torch.bool, device=img.device))
        b = images[0].shape[0] if images else next(v for v in batch.values() if isinstance(v, Tensor)).shape[0]
        for _ in range(self.config.empty_cameras):
            images.append(torch.full((b, 3, *size), -1.0, dtype=self.model.dtype, device=self.device))
            masks.append(torch.zeros(b, dtype=torch.bool, device=self.device))
        return images, masks

    def _inputs(self, batch: dict[str, Any], task: Any) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor, Tensor | None]:
        """Normalized batch -> the model's inputs: images, their masks, prompt tokens and their mask, and
        the suffix's state (π0; None for π0.5, whose state is in the prompt)."""
        images, masks = self._images(batch)
        b = images[0].shape[0]
        state = batch.get("observation.state")
        tokens, token_masks = self.tokenize(self.prompts(task, state, b))
        suffix_state = None if self.config.discrete_state else self._padded_state(state, b).to(self.model.dtype)
        return images, masks, tokens, token_masks, suffix_state

    def _prefix(self, batch: dict[str, Any], task: Any) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor | None]:
        """Normalized batch -> prefix (embeddings, validity, block starts) and the suffix's state (π0)."""
        images, masks, tokens, token_masks, state = self._inputs(batch, task)
        return self.model.embed_prefix(images, masks, tokens, token_masks), state

    # ----------------------------------------------------------------- training
    def forward(self, batch: dict[str, Any], **kwargs) -> tuple[Tensor, dict[str, float]]:
        """Loss on a raw batch; `noise` (B, T, max_action_dim), `time` (B,) or a `generator` may be given."""
        return self.compute_loss(self.normalizer(self._to_device(batch)), **kwargs)

    def compute_loss(self, batch: dict[str, Any], noise: Tensor | None = None, time: Tensor | None = None,
                     generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """Flow-matching loss: mean squared velocity error over the real action dims and non-padded steps."""
        if "action" not in batch:
            raise KeyError(f"{type(self).__name__}.forward: the batch has no 'action' (B, chunk_size, action_dim)")
        actions = batch["action"]
        if actions.ndim != 3 or actions.shape[1] != self.config.chunk_size:
            raise ValueError(
                f"{type(self).__name__}.forward: 'action' has shape {tuple(actions.shape)}; expected (batch, "
                f"{self.config.chunk_size}, {self.action_dim}) (delta_timestamps['action'] with chunk_size offsets)"
            )
        b = actions.shape[0]
        prefix, state = self._prefix(batch, batch.get("task"))
        actions = pad_last_dim(actions.float(), self.config.max_action_dim)
        if noise is None:
            noise = torch.randn(actions.shape, generator=generator, device=actions.device) if generator is not None \
                else torch.randn_like(actions)
        if time is None:
            cfg = self.config
            time = sample_time(b, actions.device, generator, cfg.time_sampling_beta_alpha, cfg.time_sampling_beta_beta)
            time = (time - 0.001) / 0.999 * cfg.time_sampling_scale + cfg.time_sampling_offset
        losses = self.model.loss(prefix, state, actions, noise.to(actions), time.to(actions.device))
        losses = losses[:, :, : self.action_dim]  # (B, T, A): the padded dims are not the robot's
        if "action_is_pad" in batch:
            keep = (~batch["action_is_pad"]).unsqueeze(-1).to(losses.dtype)
            loss = (losses * keep).sum() / (keep.sum() * losses.shape[-1]).clamp_min(1)
        else:
            loss = losses.mean()
        return loss, {"loss": loss.item()}

    # ------------------------------------------------------------------- acting
    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Any], **kwargs) -> Tensor:
        """Raw observation (with "task") -> raw actions (B, chunk_size, action_dim). Keyword arguments:
        noise (B, chunk_size, max_action_dim), num_steps, use_kv_cache (default True)."""
        kwargs.setdefault("task", observation.get("task"))
        return super().predict_action_chunk(observation, **kwargs)

    def _predict_chunk(self, obs: dict[str, Tensor], task: Any = None, noise: Tensor | None = None,
                       num_steps: int | None = None, use_kv_cache: bool = True) -> Tensor:
        cfg = self.config
        with self._evaluating():
            images, masks, tokens, token_masks, state = self._inputs(obs, task)
            shape = (tokens.shape[0], cfg.chunk_size, cfg.max_action_dim)
            if noise is None:
                noise = torch.randn(shape, device=self.device)
            elif tuple(noise.shape) != shape:
                raise ValueError(f"{type(self).__name__}: noise has shape {tuple(noise.shape)}; expected {shape} "
                                 f"(batch, chunk_size, max_action_dim)")
            steps = cfg.num_inference_steps if num_steps is None else int(num_steps)
            inputs = [*images, *masks, tokens, token_masks, noise.to(self.device, torch.float32)]
            if state is not None:
                inputs.append(state)
            n = len(images)

            def chunk(*x: Tensor) -> Tensor:
                prefix = self.model.embed_prefix(list(x[:n]), list(x[n : 2 * n]), x[2 * n], x[2 * n + 1])
                return self.model.sample(prefix, x[2 * n + 3] if state is not None else None, x[2 * n + 2], steps,
                                         use_kv_cache)

            if cfg.cuda_graphs and use_kv_cache and self.device.type == "cuda":
                actions = self._graphs.run(chunk, inputs, key=(steps, self.model.dtype))
            else:
                actions = chunk(*inputs)
        return actions[:, :, : self.action_dim]

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, directory) -> Path:
        """Policy files, plus the tokenizer in `tokenizer/` (when loaded) so that the folder stands alone."""
        directory = super().save_pretrained(directory)
        if self._tokenizer is not None:
            self._tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
            config_path = directory / CONFIG_NAME
            data = json.loads(config_path.read_text())
            data["tokenizer_name"] = TOKENIZER_DIR  # relative: resolved against the folder on loading
            config_path.write_text(json.dumps(data, indent=2) + "\n")
        return directory

    # ------------------------------------------------------------------ loading
    def load_weights(self, state_dict: dict[str, Tensor], source: str = "state dict") -> None:
        """Also takes LeRobot / openpi checkpoints: keys without the `model.` prefix, PaliGemma's layout before
        transformers 4.52 (`paligemma.language_model.model.*`, `paligemma.vision_tower.*`), the other
        variant's time-MLP names, an expert `embed_tokens` (unused), and files where safetensors kept one
        name of a tied pair (lm_head / embed_tokens)."""
        own = self.state_dict()
        fixed = {}
        for key, value in state_dict.items():
            if not key.startswith(("model.", "normalizer.")):
                key = f"model.{key}"
            for old, new in _OLD_PALIGEMMA_LAYOUT:
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
            if key == "model.paligemma_with_expert.gemma_expert.model.embed_tokens.weight":
                continue  # the expert reads embeddings; openpi's checkpoints may still carry the table
            if self.config.discrete_state:
                key = key.replace("model.action_time_mlp_", "model.time_mlp_")
                if key.startswith("model.state_proj."):
                    continue  # π0.5 has no state token
            else:
                key = key.replace("model.time_mlp_", "model.action_time_mlp_")
            fixed[key] = value
        by_storage: dict[int, list[str]] = {}
        for key, tensor in own.items():
            if key.startswith("model.") and tensor.numel():
                by_storage.setdefault(tensor.data_ptr(), []).append(key)
        for names in by_storage.values():
            present = [k for k in names if k in fixed]
            if present and len(names) > 1:
                for k in names:
                    if k not in fixed and fixed[present[0]].shape == own[k].shape:
                        fixed[k] = fixed[present[0]]
        super().load_weights(fixed, source)


@register_policy
class PI05Policy(PI0Policy):
    """π0.5: the state in the prompt as 256-bin tokens, time through adaRMS in the action expert."""

    config_class = PI05Config
    config: PI05Config
