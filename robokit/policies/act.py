"""ACT: Action Chunking with Transformers (Zhao et al. 2023, "Learning Fine-Grained Bimanual
Manipulation with Low-Cost Hardware").

A CVAE whose decoder is a transformer: camera features (ResNet-18, frozen batch norm) plus state
tokens go through a transformer encoder; a transformer decoder turns `chunk_size` learned queries
into a chunk of actions. In training a small transformer (the VAE encoder) reads the action
chunk and gives the latent's posterior; at inference the latent is the prior mean (zeros).
Parameter names follow LeRobot's ACT so that its checkpoints load without renaming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robokit.policies import onednn
from robokit.policies.attention import Dropout, MultiheadAttention
from robokit.policies.config import PolicyConfig, register_policy
from robokit.policies.policy import Policy
from robokit.policies.resnet import ResNet18, load_resnet_weights


@dataclass(frozen=True, kw_only=True)
class ACTConfig(PolicyConfig):
    """ACT hyperparameters; defaults as in the paper / LeRobot."""

    type = "act"

    chunk_size: int = 100
    """Number of actions predicted per forward pass."""
    n_action_steps: int = 100
    """Actions executed from each chunk before predicting the next one (<= chunk_size)."""
    vision_backbone: str = "resnet18"
    """Image encoder (only resnet18)."""
    pretrained_backbone_weights: str | None = None
    """Path to torchvision-named ResNet-18 weights (.safetensors); None = random init."""
    replace_final_stride_with_dilation: bool = False
    """Dilate layer4 instead of striding (not supported by ResNet-18's basic blocks)."""
    pre_norm: bool = False
    """Layer norm before (True) or after (False) attention / feed-forward."""
    dim_model: int = 512
    """Transformer width."""
    n_heads: int = 8
    """Attention heads."""
    dim_feedforward: int = 3200
    """Feed-forward hidden width."""
    feedforward_activation: str = "relu"
    """relu, gelu or glu."""
    n_encoder_layers: int = 4
    """Transformer encoder layers."""
    n_decoder_layers: int = 1
    """Transformer decoder layers (the original code used only the first of its 7)."""
    use_vae: bool = True
    """Train with the CVAE objective (latent from the action chunk)."""
    latent_dim: int = 32
    """Size of the CVAE latent."""
    n_vae_encoder_layers: int = 4
    """Layers of the VAE encoder."""
    temporal_ensemble_coeff: float | None = None
    """Temporal ensembling weight exp(-coeff * i) over overlapping chunks (needs n_action_steps=1)."""
    dropout: float = 0.1
    """Dropout in the transformers."""
    dropout_masks: str = "fast"
    """How dropout masks are drawn on the CPU: 'fast' (15 random bits per element; a small ACT trains
    ~1.5x faster) or 'torch' (torch's own draws: under a seed, the masks of nn.Dropout /
    nn.MultiheadAttention, as in LeRobot). Same drop probability either way."""
    kl_weight: float = 10.0
    """Weight of the KL term in the loss."""
    optimizer_lr: float = 1e-5
    """Learning rate."""
    optimizer_weight_decay: float = 1e-4
    """AdamW weight decay."""
    optimizer_lr_backbone: float = 1e-5
    """Learning rate of the image backbone."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps={self.n_action_steps}; expected 1..chunk_size ({self.chunk_size})")
        if self.temporal_ensemble_coeff is not None and self.n_action_steps != 1:
            raise ValueError(f"temporal_ensemble_coeff needs n_action_steps=1, got {self.n_action_steps}")
        if self.vision_backbone != "resnet18":
            raise ValueError(f"vision_backbone={self.vision_backbone!r}; only 'resnet18' is available")
        if self.replace_final_stride_with_dilation:
            raise ValueError("replace_final_stride_with_dilation=True: ResNet-18 basic blocks do not support dilation")
        if self.feedforward_activation not in ("relu", "gelu", "glu"):
            raise ValueError(f"feedforward_activation={self.feedforward_activation!r}; expected relu, gelu or glu")
        if self.dim_model % self.n_heads:
            raise ValueError(f"dim_model={self.dim_model} must be divisible by n_heads={self.n_heads}")
        if self.dropout_masks not in ("fast", "torch"):
            raise ValueError(f"dropout_masks={self.dropout_masks!r}; expected 'fast' or 'torch'")
        if self.n_obs_steps != 1:
            raise ValueError(f"n_obs_steps={self.n_obs_steps}; ACT uses the current observation only (1)")


def sinusoid_table(n_positions: int, dim: int) -> Tensor:
    """(n_positions, dim) fixed 1-D sinusoidal embeddings: sin on even, cos on odd channels."""
    position = torch.arange(n_positions, dtype=torch.float64)[:, None]
    freq = torch.pow(10000.0, 2 * (torch.arange(dim) // 2).double() / dim)
    table = position / freq
    table[:, 0::2] = table[:, 0::2].sin()
    table[:, 1::2] = table[:, 1::2].cos()
    return table.float()


def sinusoid_2d(height: int, width: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """(dim, H, W) 2-D sinusoidal embedding of a feature map: half the channels for y, half for x."""
    half, eps, temperature = dim // 2, 1e-6, 10000.0
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (y[-1] + eps) * 2 * math.pi  # positions normalized to (0, 2pi]
    x = x / (x[-1] + eps) * 2 * math.pi
    freq = temperature ** (2 * (torch.arange(half, device=device) // 2) / half)

    def embed(pos: Tensor) -> Tensor:  # (L,) -> (L, half), interleaved sin/cos
        angles = pos[:, None] / freq
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=-1).flatten(1)

    ey = embed(y)[:, None, :].expand(height, width, half)
    ex = embed(x)[None, :, :].expand(height, width, half)
    return torch.cat((ey, ex), dim=-1).permute(2, 0, 1).to(dtype)


def _activation(name: str):
    return {"relu": F.relu, "gelu": F.gelu, "glu": F.glu}[name]


def feedforward(layer: nn.Module, x: Tensor) -> Tensor:
    """linear2(dropout(activation(linear1(x)))) of a transformer layer; a ReLU runs inside linear1's
    matmul on the CPU inference fast path (onednn)."""
    if layer.activation is F.relu:
        hidden = layer.linear1.forward_relu(x)
    else:
        hidden = layer.activation(layer.linear1(x))
    return layer.linear2(layer.dropout(hidden))


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward; queries/keys get the positional embedding, values do not."""

    def __init__(self, cfg: ACTConfig):
        super().__init__()
        fast = cfg.dropout_masks == "fast"
        self.self_attn = MultiheadAttention(cfg.dim_model, cfg.n_heads, cfg.dropout, fast_dropout=fast)
        self.linear1 = onednn.Linear(cfg.dim_model, cfg.dim_feedforward)
        self.dropout = Dropout(cfg.dropout, fast=fast)
        self.linear2 = onednn.Linear(cfg.dim_feedforward, cfg.dim_model)
        self.norm1 = nn.LayerNorm(cfg.dim_model)
        self.norm2 = nn.LayerNorm(cfg.dim_model)
        self.dropout1 = Dropout(cfg.dropout, fast=fast)
        self.dropout2 = Dropout(cfg.dropout, fast=fast)
        self.activation = _activation(cfg.feedforward_activation)
        self.pre_norm = cfg.pre_norm

    def forward(self, x: Tensor, pos: Tensor | None = None, key_padding_mask: Tensor | None = None) -> Tensor:
        # x: (S, B, D); pos: (S, 1 or B, D)
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        qk = x if pos is None else x + pos
        x = self.self_attn(qk, qk, x, key_padding_mask=key_padding_mask)
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip, x = x, self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        x = feedforward(self, x)
        x = skip + self.dropout2(x)
        return x if self.pre_norm else self.norm2(x)


class Encoder(nn.Module):
    def __init__(self, cfg: ACTConfig, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(cfg.dim_model) if cfg.pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor | None = None, key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos=pos, key_padding_mask=key_padding_mask)
        return self.norm(x)


class DecoderLayer(nn.Module):
    """Self-attention over the action queries, cross-attention to the encoder output, feed-forward."""

    def __init__(self, cfg: ACTConfig):
        super().__init__()
        fast = cfg.dropout_masks == "fast"
        self.self_attn = MultiheadAttention(cfg.dim_model, cfg.n_heads, cfg.dropout, fast_dropout=fast)
        self.multihead_attn = MultiheadAttention(cfg.dim_model, cfg.n_heads, cfg.dropout, fast_dropout=fast)
        self.linear1 = onednn.Linear(cfg.dim_model, cfg.dim_feedforward)
        self.dropout = Dropout(cfg.dropout, fast=fast)
        self.linear2 = onednn.Linear(cfg.dim_feedforward, cfg.dim_model)
        self.norm1 = nn.LayerNorm(cfg.dim_model)
        self.norm2 = nn.LayerNorm(cfg.dim_model)
        self.norm3 = nn.LayerNorm(cfg.dim_model)
        self.dropout1 = Dropout(cfg.dropout, fast=fast)
        self.dropout2 = Dropout(cfg.dropout, fast=fast)
        self.dropout3 = Dropout(cfg.dropout, fast=fast)
        self.activation = _activation(cfg.feedforward_activation)
        self.pre_norm = cfg.pre_norm

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        # x: (chunk, B, D) queries; memory: (S, B, D) encoder output
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        qk = x + query_pos
        x = skip + self.dropout1(self.self_attn(qk, qk, x))
        if self.pre_norm:
            skip, x = x, self.norm2(x)
        else:
            x = self.norm1(x)
            skip = x
        attended = self.multihead_attn(x + query_pos, memory + memory_pos, memory)
        x = skip + self.dropout2(attended)
        if self.pre_norm:
            skip, x = x, self.norm3(x)
        else:
            x = self.norm2(x)
            skip = x
        x = skip + self.dropout3(feedforward(self, x))
        return x if self.pre_norm else self.norm3(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ACTConfig):
        super().__init__()
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers)])
        self.norm = nn.LayerNorm(cfg.dim_model)

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, query_pos, memory_pos)
        return self.norm(x)


class ACTModel(nn.Module):
    """The network on normalized tensors. `n_images` cameras share one backbone."""

    def __init__(self, cfg: ACTConfig, state_dim: int | None, env_dim: int | None, n_images: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim_model
        self.has_state, self.has_env, self.n_images = state_dim is not None, env_dim is not None, n_images
        if cfg.use_vae:
            self.vae_encoder = Encoder(cfg, cfg.n_vae_encoder_layers)
            self.vae_encoder_cls_embed = nn.Embedding(1, d)
            if self.has_state:
                self.vae_encoder_robot_state_input_proj = onednn.Linear(state_dim, d)
            self.vae_encoder_action_input_proj = onednn.Linear(action_dim, d)
            self.vae_encoder_latent_output_proj = onednn.Linear(d, cfg.latent_dim * 2)
            n_vae_tokens = 1 + int(self.has_state) + cfg.chunk_size  # [cls, state?, actions...]
            self.register_buffer("vae_encoder_pos_enc", sinusoid_table(n_vae_tokens, d).unsqueeze(0))
        if n_images:
            self.backbone = ResNet18(norm="frozen_batch")
            if cfg.pretrained_backbone_weights:
                load_resnet_weights(self.backbone, cfg.pretrained_backbone_weights)
            self.encoder_img_feat_input_proj = onednn.Conv2d(ResNet18.out_channels, d, kernel_size=1)
        self.encoder = Encoder(cfg, cfg.n_encoder_layers)
        self.decoder = Decoder(cfg)
        if self.has_state:
            self.encoder_robot_state_input_proj = onednn.Linear(state_dim, d)
        if self.has_env:
            self.encoder_env_state_input_proj = onednn.Linear(env_dim, d)
        self.encoder_latent_input_proj = onednn.Linear(cfg.latent_dim, d)
        n_1d_tokens = 1 + int(self.has_state) + int(self.has_env)  # [latent, state?, env?]
        self.encoder_1d_feature_pos_embed = nn.Embedding(n_1d_tokens, d)
        self.decoder_pos_embed = nn.Embedding(cfg.chunk_size, d)
        self.action_head = onednn.Linear(d, action_dim)
        for name, p in self.named_parameters():  # xavier init of the transformer parts
            if not name.startswith("backbone.") and p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode_latent(self, state: Tensor | None, actions: Tensor, action_is_pad: Tensor | None):
        """VAE encoder: (B, chunk, A) actions [+ (B, S) state] -> mu, log_sigma_x2 each (B, latent)."""
        b = actions.shape[0]
        tokens = [self.vae_encoder_cls_embed.weight.expand(b, 1, -1)]
        if self.has_state:
            tokens.append(self.vae_encoder_robot_state_input_proj(state).unsqueeze(1))
        tokens.append(self.vae_encoder_action_input_proj(actions))
        x = torch.cat(tokens, dim=1).transpose(0, 1)  # (1 + state? + chunk, B, D)
        n_prefix = len(tokens) - 1
        pad = torch.zeros(b, n_prefix, dtype=torch.bool, device=actions.device)
        if action_is_pad is None:
            action_is_pad = torch.zeros(actions.shape[:2], dtype=torch.bool, device=actions.device)
        key_padding_mask = torch.cat([pad, action_is_pad], dim=1)  # (B, tokens)
        pos = self.vae_encoder_pos_enc.transpose(0, 1).to(x.dtype)  # (tokens, 1, D)
        cls_out = self.vae_encoder(x, pos=pos, key_padding_mask=key_padding_mask)[0]  # (B, D)
        params = self.vae_encoder_latent_output_proj(cls_out)
        return params[:, : self.cfg.latent_dim], params[:, self.cfg.latent_dim :]

    def encode_images(self, images: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Cameras [(B, 3, H, W)] -> tokens (n_cams*h*w, B, D) and their 2-D positions (n_cams*h*w, 1, D)."""
        b = images[0].shape[0]
        if all(img.shape == images[0].shape for img in images):
            maps = self.backbone(torch.cat(images, dim=0))  # one batched pass: (n_cams*B, 512, h, w)
            maps = list(maps.split(b, dim=0))
        else:
            maps = [self.backbone(img) for img in images]
        tokens, positions = [], []
        for fmap in maps:
            h, w = fmap.shape[-2:]
            pos = sinusoid_2d(h, w, self.cfg.dim_model, device=fmap.device, dtype=fmap.dtype)  # (D, h, w)
            feats = self.encoder_img_feat_input_proj(fmap)  # (B, D, h, w)
            tokens.append(feats.flatten(2).permute(2, 0, 1))  # (h*w, B, D)
            positions.append(pos.flatten(1).transpose(0, 1).unsqueeze(1))  # (h*w, 1, D)
        return torch.cat(tokens, dim=0), torch.cat(positions, dim=0)

    def forward(
        self,
        batch: dict[str, Tensor],
        image_keys: list[str],
        latent_noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Normalized batch -> actions (B, chunk, A), and (mu, log_sigma_x2) when the VAE path runs."""
        state = batch.get("observation.state") if self.has_state else None
        reference = state if state is not None else (
            batch["observation.environment_state"] if self.has_env else batch[image_keys[0]]
        )
        b, device, dtype = reference.shape[0], reference.device, reference.dtype
        mu = log_sigma_x2 = None
        if self.cfg.use_vae and self.training and "action" in batch:
            mu, log_sigma_x2 = self.encode_latent(state, batch["action"], batch.get("action_is_pad"))
            noise = torch.randn_like(mu) if latent_noise is None else latent_noise
            latent = mu + (log_sigma_x2 / 2).exp() * noise  # reparameterization
        else:
            latent = torch.zeros(b, self.cfg.latent_dim, device=device, dtype=dtype)  # prior mean

        tokens = [self.encoder_latent_input_proj(latent)]  # each (B, D)
        if self.has_state:
            tokens.append(self.encoder_robot_state_input_proj(state))
        if self.has_env:
            tokens.append(self.encoder_env_state_input_proj(batch["observation.environment_state"]))
        x = torch.stack(tokens, dim=0)  # (n_1d, B, D)
        pos = self.encoder_1d_feature_pos_embed.weight.unsqueeze(1).to(dtype)  # (n_1d, 1, D)
        if self.n_images:
            img_tokens, img_pos = self.encode_images([batch[k] for k in image_keys])
            x = torch.cat([x, img_tokens.to(x.dtype)], dim=0)  # (n_1d + n_cams*h*w, B, D)
            pos = torch.cat([pos, img_pos.to(x.dtype)], dim=0)
        memory = self.encoder(x, pos=pos)
        queries = torch.zeros(self.cfg.chunk_size, b, self.cfg.dim_model, device=device, dtype=memory.dtype)
        query_pos = self.decoder_pos_embed.weight.unsqueeze(1).to(memory.dtype)  # (chunk, 1, D)
        out = self.decoder(queries, memory, query_pos, pos)  # (chunk, B, D)
        return self.action_head(out.transpose(0, 1)), mu, log_sigma_x2  # (B, chunk, A)


class TemporalEnsembler:
    """Average of every chunk's prediction for the current step, weighted exp(-coeff * age)."""

    def __init__(self, coeff: float, chunk_size: int):
        self.weights = torch.exp(-coeff * torch.arange(chunk_size, dtype=torch.float64))
        self.reset()

    def reset(self) -> None:
        self.sum: Tensor | None = None  # (B, chunk, A) weighted sums for the coming steps
        self.total: Tensor | None = None  # (chunk,) sum of weights per coming step
        self.counts: Tensor | None = None  # (chunk,) predictions so far per coming step

    def update(self, chunk: Tensor) -> Tensor:
        """Add a new chunk (B, chunk, A) predicted at this step; return the ensembled action (B, A)."""
        n = chunk.shape[1]
        if self.sum is None:
            self.sum = torch.zeros_like(chunk, dtype=torch.float64)
            self.total = torch.zeros(n, dtype=torch.float64, device=chunk.device)
            self.counts = torch.zeros(n, dtype=torch.long)
        # The oldest prediction of a step gets weight w[0], the next w[1], ...
        w = self.weights[self.counts].to(chunk.device)  # (chunk,)
        self.sum += w[None, :, None] * chunk.double()
        self.total += w
        self.counts += 1
        action = (self.sum[:, 0] / self.total[0]).to(chunk.dtype)
        self.sum = torch.cat([self.sum[:, 1:], torch.zeros_like(self.sum[:, :1])], dim=1)
        self.total = torch.cat([self.total[1:], torch.zeros_like(self.total[:1])])
        self.counts = torch.cat([self.counts[1:], torch.zeros_like(self.counts[:1])])
        return action


@register_policy
class ACTPolicy(Policy):
    config_class = ACTConfig
    config: ACTConfig

    def __init__(self, config: ACTConfig, input_features, output_features, stats=None):
        super().__init__(config, input_features, output_features, stats)
        state, env = self.state_feature, self.env_state_feature
        if not self.image_features and env is None:
            raise ValueError(
                f"ACT needs at least one camera or 'observation.environment_state'; got {sorted(input_features)}"
            )
        self.model = ACTModel(
            config,
            state_dim=state.shape[0] if state else None,
            env_dim=env.shape[0] if env else None,
            n_images=len(self.image_features),
            action_dim=self.action_dim,
        )
        self.ensembler = (
            TemporalEnsembler(config.temporal_ensemble_coeff, config.chunk_size)
            if config.temporal_ensemble_coeff is not None
            else None
        )

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.config.chunk_size))

    def optimizer_param_groups(self) -> list[dict]:
        backbone = [p for n, p in self.named_parameters() if n.startswith("model.backbone.") and p.requires_grad]
        rest = [p for n, p in self.named_parameters() if not n.startswith("model.backbone.") and p.requires_grad]
        groups = [{"params": rest}]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.optimizer_lr_backbone})
        return groups

    def reset(self) -> None:
        super().reset()
        if self.ensembler is not None:
            self.ensembler.reset()

    def _predict_chunk(self, obs: dict[str, Tensor], **kwargs) -> Tensor:
        with self._evaluating():
            actions, _, _ = self.model(obs, self.image_features)
        return actions

    @torch.no_grad()
    def select_action(self, observation: dict, **kwargs) -> Tensor:
        if self.ensembler is not None:
            return self.ensembler.update(self.predict_action_chunk(observation))
        return super().select_action(observation, **kwargs)

    def compute_loss(self, batch: dict[str, Tensor], latent_noise: Tensor | None = None):
        """L1 on the (non-padded) action chunk + kl_weight * KL(posterior || N(0, I))."""
        if "action" not in batch:
            raise KeyError("ACT.forward: the batch has no 'action' (B, chunk_size, action_dim)")
        actions_hat, mu, log_sigma_x2 = self.model(batch, self.image_features, latent_noise=latent_noise)
        target = batch["action"]
        if target.shape[1] != self.config.chunk_size:
            raise ValueError(
                f"ACT.forward: 'action' has {target.shape[1]} steps; chunk_size is {self.config.chunk_size} "
                f"(set delta_timestamps['action'] to {self.config.chunk_size} offsets)"
            )
        l1 = (actions_hat - target).abs()
        if "action_is_pad" in batch:
            l1 = l1 * (~batch["action_is_pad"]).unsqueeze(-1)
        l1 = l1.mean()
        logs = {"l1_loss": l1.item()}
        loss = l1
        if mu is not None:
            kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
            logs["kld_loss"] = kld.item()
            loss = l1 + self.config.kl_weight * kld
        logs["loss"] = loss.item()
        return loss, logs
