"""Diffusion Policy (Chi et al. 2023, "Diffusion Policy: Visuomotor Policy Learning via Action Diffusion").

A 1-D temporal U-Net denoises a `horizon`-long action trajectory, conditioned (FiLM) on the
diffusion step and on the last `n_obs_steps` observations: the state, an optional environment
state, and per camera ResNet-18 (group norm) features reduced by a spatial softmax to keypoints.
Trained with DDPM (100 steps, squared-cosine schedule); sampled with DDPM or DDIM in
`num_inference_steps`. Without cameras it is the state-only variant. Parameter names follow
LeRobot's except the backbone's, which keep torchvision's (see lerobot_compat for the mapping).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robokit.policies import onednn
from robokit.policies.config import PolicyConfig, register_policy
from robokit.policies.noise_schedulers import NoiseScheduler
from robokit.policies.policy import Policy
from robokit.policies.resnet import ResNet18, load_resnet_weights


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig(PolicyConfig):
    """Diffusion Policy hyperparameters; defaults as in the paper / LeRobot (PushT)."""

    type = "diffusion"

    n_obs_steps: int = 2
    """Observation steps the policy is conditioned on (current one included)."""
    horizon: int = 16
    """Length of the denoised action trajectory (starts at the first observation step)."""
    n_action_steps: int = 8
    """Actions executed per trajectory, starting at the current step."""
    normalization_mapping: dict[str, str] = field(
        default_factory=lambda: {"VISUAL": "mean_std", "STATE": "min_max", "ENV": "min_max", "ACTION": "min_max"}
    )
    """Normalization mode per feature type."""
    drop_n_last_frames: int = 7
    """Frames at the end of each episode not used as training samples (horizon - n_action_steps - n_obs_steps + 1)."""
    vision_backbone: str = "resnet18"
    """Image encoder (only resnet18)."""
    crop_shape: tuple[int, int] | None = (84, 84)
    """(H, W) crop of every camera image: random in training, centered at inference; None = no crop."""
    crop_is_random: bool = True
    """Random crops in training (augmentation); False = center crop always."""
    pretrained_backbone_weights: str | None = None
    """Path to torchvision-named ResNet-18 weights (.safetensors); needs use_group_norm=False."""
    use_group_norm: bool = True
    """GroupNorm instead of BatchNorm in the backbone."""
    spatial_softmax_num_keypoints: int = 32
    """Keypoints of the spatial softmax (image feature = 2 x keypoints)."""
    use_separate_rgb_encoder_per_camera: bool = False
    """One backbone per camera instead of a shared one."""
    down_dims: tuple[int, ...] = (512, 1024, 2048)
    """U-Net channel widths, one per resolution level."""
    kernel_size: int = 5
    """U-Net convolution kernel size."""
    n_groups: int = 8
    """GroupNorm groups in the U-Net."""
    diffusion_step_embed_dim: int = 128
    """Size of the diffusion-step embedding."""
    use_film_scale_modulation: bool = True
    """FiLM with scale and bias (True) or bias only."""
    noise_scheduler_type: str = "DDPM"
    """DDPM or DDIM sampling."""
    num_train_timesteps: int = 100
    """Diffusion steps in training."""
    beta_schedule: str = "squaredcos_cap_v2"
    """squaredcos_cap_v2, linear or scaled_linear."""
    beta_start: float = 1e-4
    """First beta (linear schedules)."""
    beta_end: float = 0.02
    """Last beta (linear schedules)."""
    prediction_type: str = "epsilon"
    """What the U-Net predicts: epsilon (the noise) or sample (the clean trajectory)."""
    clip_sample: bool = True
    """Clip the predicted clean trajectory to +-clip_sample_range at each step."""
    clip_sample_range: float = 1.0
    """Range of that clip."""
    num_inference_steps: int | None = None
    """Sampling steps; None = num_train_timesteps."""
    do_mask_loss_for_padding: bool = False
    """Ignore padded actions (past the episode end) in the loss."""
    optimizer_lr: float = 1e-4
    """Learning rate."""
    optimizer_betas: tuple[float, float] = (0.95, 0.999)
    """Adam betas."""
    optimizer_eps: float = 1e-8
    """Adam epsilon."""
    optimizer_weight_decay: float = 1e-6
    """AdamW weight decay."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_obs_steps < 1 or self.horizon < 1:
            raise ValueError(f"n_obs_steps={self.n_obs_steps}, horizon={self.horizon}; both must be >= 1")
        if self.n_action_steps > self.horizon - self.n_obs_steps + 1:
            raise ValueError(
                f"n_action_steps={self.n_action_steps} must be <= horizon - n_obs_steps + 1 "
                f"= {self.horizon - self.n_obs_steps + 1}"
            )
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"horizon={self.horizon} must be a multiple of 2^(len(down_dims)-1) = {factor}")
        if self.vision_backbone != "resnet18":
            raise ValueError(f"vision_backbone={self.vision_backbone!r}; only 'resnet18' is available")
        if self.noise_scheduler_type.upper() not in ("DDPM", "DDIM"):
            raise ValueError(f"noise_scheduler_type={self.noise_scheduler_type!r}; expected 'DDPM' or 'DDIM'")
        if self.pretrained_backbone_weights and self.use_group_norm:
            raise ValueError("pretrained_backbone_weights needs use_group_norm=False (ImageNet weights use BatchNorm)")

    @property
    def inference_steps(self) -> int:
        return self.num_inference_steps or self.num_train_timesteps


# --------------------------------------------------------------------------- vision
class SpatialSoftmax(nn.Module):
    """Feature map (B, C, H, W) -> expected image coordinates of `num_keypoints` softmax maps (B, K, 2)."""

    def __init__(self, in_channels: int, height: int, width: int, num_keypoints: int):
        super().__init__()
        self.nets = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("pos_grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))  # (H*W, 2)
        self.num_keypoints = num_keypoints

    def forward(self, features: Tensor) -> Tensor:
        logits = self.nets(features).flatten(2)  # (B, K, H*W)
        attention = F.softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)  # (B*K, H*W)
        return (attention @ self.pos_grid).reshape(-1, self.num_keypoints, 2)


class RgbEncoder(nn.Module):
    """Image (N, 3, H, W) -> feature (N, 2 * keypoints): crop, ResNet-18, spatial softmax, linear + ReLU."""

    def __init__(self, cfg: DiffusionConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.crop_shape = tuple(cfg.crop_shape) if cfg.crop_shape else None
        self.crop_is_random = cfg.crop_is_random
        if self.crop_shape and (self.crop_shape[0] > image_shape[1] or self.crop_shape[1] > image_shape[2]):
            raise ValueError(f"crop_shape={list(self.crop_shape)} is larger than the images {list(image_shape[1:])}")
        self.backbone = ResNet18(norm="group" if cfg.use_group_norm else "batch")
        if cfg.pretrained_backbone_weights:
            load_resnet_weights(self.backbone, cfg.pretrained_backbone_weights)
        h, w = self.crop_shape or image_shape[1:]
        with torch.no_grad():  # the feature map size for this input size
            fmap = self.backbone.eval()(torch.zeros(1, image_shape[0], h, w))
        self.backbone.train()
        self.pool = SpatialSoftmax(fmap.shape[1], fmap.shape[2], fmap.shape[3], cfg.spatial_softmax_num_keypoints)
        self.feature_dim = cfg.spatial_softmax_num_keypoints * 2
        self.out = onednn.Linear(self.feature_dim, self.feature_dim)

    def crop(self, x: Tensor) -> Tensor:
        if not self.crop_shape:
            return x
        (h, w), (ch, cw) = x.shape[-2:], self.crop_shape
        if self.training and self.crop_is_random:  # one random window per image
            tops = torch.randint(0, h - ch + 1, (x.shape[0],)).tolist()
            lefts = torch.randint(0, w - cw + 1, (x.shape[0],)).tolist()
            return torch.stack([img[:, t : t + ch, l : l + cw] for img, t, l in zip(x, tops, lefts)])
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return x[..., top : top + ch, left : left + cw]

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.backbone(self.crop(x)))  # (N, K, 2)
        return F.relu(self.out(x.flatten(1)))  # (N, 2K)


# --------------------------------------------------------------------------- U-Net
class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:  # (B,) -> (B, dim)
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        angles = t[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


def _matmul_path(conv: nn.Module, x: Tensor) -> bool:
    """CPU, plain (zero padding, no groups/dilation): the matmul forms below apply."""
    return (x.device.type == "cpu" and conv.groups == 1 and conv.dilation[0] == 1 and conv.padding_mode == "zeros"
            and x.ndim == 3)


class Conv1d(nn.Conv1d):
    """nn.Conv1d that on CPU runs as one matmul of the unfolded windows (B*T, C_in*k) by the weights.

    Same function and parameters. PyTorch's CPU conv1d (im2col, then weights @ columns) streams the
    U-Net's large weights slowly: at batch 1 a 2048-channel conv took 2.3x the time of this form,
    the whole denoising step 2.2x; a batch-8 forward + backward 2.9x.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not _matmul_path(self, x):
            return super().forward(x)
        (k,), (stride,), (pad,) = self.kernel_size, self.stride, self.padding
        b, c, _ = x.shape
        windows = F.pad(x, (pad, pad)).unfold(-1, k, stride)  # (B, C_in, T_out, k)
        t_out = windows.shape[2]
        cols = windows.permute(0, 2, 1, 3).reshape(b * t_out, c * k)  # (B*T_out, C_in*k)
        out = onednn.linear(cols, self.weight.reshape(self.out_channels, -1), self.bias)  # (B*T_out, C_out)
        return out.reshape(b, t_out, -1).transpose(1, 2)  # (B, C_out, T_out)


class ConvTranspose1d(nn.ConvTranspose1d):
    """nn.ConvTranspose1d that on CPU runs as a matmul (each input step times all kernel taps) plus an
    overlap-add (fold). Same function and parameters; at batch 1 ~10x faster than PyTorch's CPU kernel."""

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if output_size is not None or self.output_padding[0] or not _matmul_path(self, x):
            return super().forward(x, output_size)
        (k,), (stride,), (pad,) = self.kernel_size, self.stride, self.padding
        b, c, t = x.shape
        taps = onednn.linear(x.transpose(1, 2), self.weight.reshape(c, -1).t())  # (B, T, C_out*k)
        full = (t - 1) * stride + k
        y = F.fold(taps.transpose(1, 2), (1, full), (1, k), stride=(1, stride)).reshape(b, self.out_channels, full)
        y = y[:, :, pad : full - pad]  # (B, C_out, (T-1)*stride - 2*pad + k)
        return y if self.bias is None else y + self.bias[:, None]


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.block = nn.Sequential(
            Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2), nn.GroupNorm(n_groups, out_ch), nn.Mish()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ConditionalResBlock1d(nn.Module):
    """Two conv blocks; the condition modulates the first one's output (FiLM: scale * x + bias)."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, n_groups: int, film_scale: bool):
        super().__init__()
        self.out_ch, self.film_scale = out_ch, film_scale
        self.conv1 = Conv1dBlock(in_ch, out_ch, kernel_size, n_groups)
        self.cond_encoder = nn.Sequential(nn.Mish(), onednn.Linear(cond_dim, out_ch * 2 if film_scale else out_ch))
        self.conv2 = Conv1dBlock(out_ch, out_ch, kernel_size, n_groups)
        self.residual_conv = Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, film: Tensor) -> Tensor:
        # x: (B, in_ch, T); film: (B, out_ch or 2*out_ch) = cond_encoder(cond), cond (B, cond_dim)
        out = self.conv1(x)
        film = film.unsqueeze(-1)  # (B, out_ch or 2*out_ch, 1)
        if self.film_scale:
            out = film[:, : self.out_ch] * out + film[:, self.out_ch :]
        else:
            out = out + film
        return self.conv2(out) + self.residual_conv(x)


class ConditionalUnet1d(nn.Module):
    """(B, T, action_dim) noisy trajectory + step (B,) + global condition (B, G) -> (B, T, action_dim)."""

    def __init__(self, cfg: DiffusionConfig, action_dim: int, global_cond_dim: int):
        super().__init__()
        e = cfg.diffusion_step_embed_dim
        self.diffusion_step_encoder = nn.Sequential(
            SinusoidalPosEmb(e), onednn.Linear(e, e * 4), nn.Mish(), onednn.Linear(e * 4, e)
        )
        cond_dim = e + global_cond_dim
        dims = (action_dim, *cfg.down_dims)
        in_out = list(zip(dims[:-1], dims[1:]))  # [(A, d0), (d0, d1), ...]

        def block(i: int, o: int) -> ConditionalResBlock1d:
            return ConditionalResBlock1d(i, o, cond_dim, cfg.kernel_size, cfg.n_groups, cfg.use_film_scale_modulation)

        self.down_modules = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            down = nn.Identity() if last else Conv1d(c_out, c_out, 3, stride=2, padding=1)  # T -> T/2
            self.down_modules.append(nn.ModuleList([block(c_in, c_out), block(c_out, c_out), down]))
        self.mid_modules = nn.ModuleList([block(cfg.down_dims[-1], cfg.down_dims[-1]) for _ in range(2)])
        self.up_modules = nn.ModuleList()
        for i, (c_out, c_in) in enumerate(reversed(in_out[1:])):
            last = i == len(in_out) - 1
            up = nn.Identity() if last else ConvTranspose1d(c_out, c_out, 4, stride=2, padding=1)  # T -> 2T
            self.up_modules.append(nn.ModuleList([block(c_in * 2, c_out), block(c_out, c_out), up]))
        self.final_conv = nn.Sequential(
            Conv1dBlock(cfg.down_dims[0], cfg.down_dims[0], cfg.kernel_size, cfg.n_groups),
            Conv1d(cfg.down_dims[0], action_dim, 1),
        )

    def res_blocks(self) -> list[ConditionalResBlock1d]:
        """The conditioned blocks in the order `forward` runs them."""
        down = [blk for res1, res2, _ in self.down_modules for blk in (res1, res2)]
        up = [blk for res1, res2, _ in self.up_modules for blk in (res1, res2)]
        return [*down, *self.mid_modules, *up]

    def films(self, timestep: Tensor, global_cond: Tensor) -> list[Tensor]:
        """Each block's FiLM parameters (N, out_ch or 2*out_ch) for steps (N,) and conditions (N, G)."""
        emb = self.diffusion_step_encoder[0](timestep).to(self.diffusion_step_encoder[1].weight.dtype)
        emb = self.diffusion_step_encoder[1:](emb)  # (N, e)
        cond = torch.cat([emb.to(global_cond.dtype), global_cond], dim=-1)  # (N, e + G)
        return [blk.cond_encoder(cond) for blk in self.res_blocks()]

    def forward(self, x: Tensor, timestep: Tensor, global_cond: Tensor, films: list[Tensor] | None = None) -> Tensor:
        """`films`: `self.films(timestep, global_cond)` computed beforehand (sampling computes them for
        every step of a chunk in one pass, as they do not depend on the trajectory)."""
        film = iter(self.films(timestep, global_cond) if films is None else films)
        x = x.transpose(1, 2)  # (B, A, T)
        skips = []
        for res1, res2, down in self.down_modules:
            x = res2(res1(x, next(film)), next(film))
            skips.append(x)
            x = down(x)
        for mid in self.mid_modules:
            x = mid(x, next(film))
        for res1, res2, up in self.up_modules:
            x = torch.cat([x, skips.pop()], dim=1)  # skip connection from the same resolution
            x = up(res2(res1(x, next(film)), next(film)))
        return self.final_conv(x).transpose(1, 2)  # (B, T, A)


# --------------------------------------------------------------------------- model
class DiffusionModel(nn.Module):
    """Observation encoder + U-Net + noise scheduler, on normalized tensors."""

    def __init__(self, cfg: DiffusionConfig, state_dim: int, env_dim: int, image_shape, n_cams: int, action_dim: int):
        super().__init__()
        self.cfg, self.n_cams = cfg, n_cams
        cond_per_step = state_dim + env_dim
        if n_cams:
            if cfg.use_separate_rgb_encoder_per_camera:
                self.rgb_encoder = nn.ModuleList([RgbEncoder(cfg, image_shape) for _ in range(n_cams)])
                feature_dim = self.rgb_encoder[0].feature_dim
            else:
                self.rgb_encoder = RgbEncoder(cfg, image_shape)
                feature_dim = self.rgb_encoder.feature_dim
            cond_per_step += feature_dim * n_cams
        self.unet = ConditionalUnet1d(cfg, action_dim, cond_per_step * cfg.n_obs_steps)
        self.scheduler = NoiseScheduler(
            cfg.noise_scheduler_type, cfg.num_train_timesteps, cfg.beta_schedule, cfg.beta_start, cfg.beta_end,
            cfg.prediction_type, cfg.clip_sample, cfg.clip_sample_range,
        )

    def global_condition(self, batch: dict[str, Tensor], image_keys: list[str]) -> Tensor:
        """Observation history (B, n_obs_steps, ...) -> (B, n_obs_steps * per-step features)."""
        feats = []
        if "observation.state" in batch:
            feats.append(batch["observation.state"])  # (B, S, state)
        if image_keys:
            images = torch.stack([batch[k] for k in image_keys], dim=2)  # (B, S, N, C, H, W)
            b, s, n = images.shape[:3]
            if isinstance(self.rgb_encoder, nn.ModuleList):
                per_cam = [enc(images[:, :, i].flatten(0, 1)) for i, enc in enumerate(self.rgb_encoder)]
                img = torch.stack(per_cam, dim=1)  # (B*S, N, F)
            else:
                img = self.rgb_encoder(images.flatten(0, 2)).reshape(b * s, n, -1)  # all cameras in one pass
            feats.append(img.reshape(b, s, -1))  # (B, S, N*F)
        if "observation.environment_state" in batch:
            feats.append(batch["observation.environment_state"])  # (B, S, env)
        return torch.cat(feats, dim=-1).flatten(1)

    def generate_actions(
        self,
        global_cond: Tensor,
        noise: Tensor | None = None,
        step_noise: Sequence[Tensor] | Callable | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Denoise a full trajectory (B, horizon, A) from `noise` (default: standard normal)."""
        b, net_dtype = global_cond.shape[0], global_cond.dtype
        dtype = torch.promote_types(net_dtype, torch.float32)  # the sampler runs in float32 even for a bf16 U-Net
        shape = (b, self.cfg.horizon, self.unet.final_conv[1].out_channels)
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=global_cond.device, dtype=dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (batch, horizon, action_dim) = {shape}")
        noise = noise.to(global_cond.device, dtype)

        films = self._films_per_step(global_cond)

        def denoise(x: Tensor, t: Tensor) -> Tensor:
            step_films = None if films is None else films[int(t[0])]
            return self.unet(x.to(net_dtype), t, global_cond, step_films).to(dtype)

        return self.scheduler.sample(denoise, noise, self.cfg.inference_steps, step_noise, generator)

    def _films_per_step(self, global_cond: Tensor, max_bytes: int = 64 << 20) -> dict[int, list[Tensor]] | None:
        """{timestep: the blocks' FiLM parameters} for every sampling step, computed in one batched pass
        per block instead of one pass over the FiLM weights per step; None (per step) past `max_bytes`."""
        timesteps = self.scheduler.timesteps(self.cfg.inference_steps)
        b, n = global_cond.shape[0], len(timesteps)
        width = sum(blk.cond_encoder[1].out_features for blk in self.unet.res_blocks())
        if n * b * width * global_cond.element_size() > max_bytes:
            return None
        t = torch.tensor(timesteps, device=global_cond.device).repeat_interleave(b)  # (n*B,) step-major
        films = self.unet.films(t, global_cond.repeat(n, 1))  # each (n*B, F)
        return {step: [f[i * b : (i + 1) * b] for f in films] for i, step in enumerate(timesteps)}


@register_policy
class DiffusionPolicy(Policy):
    config_class = DiffusionConfig
    config: DiffusionConfig

    def __init__(self, config: DiffusionConfig, input_features, output_features, stats=None):
        super().__init__(config, input_features, output_features, stats)
        state, env, cams = self.state_feature, self.env_state_feature, self.image_features
        if state is None and env is None and not cams:
            raise ValueError(f"Diffusion Policy needs a state, an environment state or a camera; got {sorted(input_features)}")
        shapes = {self.input_features[k].shape for k in cams}
        if len(shapes) > 1:
            raise ValueError(f"Diffusion Policy: all cameras must have the same shape, got {sorted(shapes)}")
        self.model = DiffusionModel(
            config,
            state_dim=state.shape[0] if state else 0,
            env_dim=env.shape[0] if env else 0,
            image_shape=next(iter(shapes)) if shapes else None,
            n_cams=len(cams),
            action_dim=self.action_dim,
        )
        self._history: deque[dict[str, Tensor]] = deque(maxlen=config.n_obs_steps)

    @property
    def observation_delta_indices(self) -> list[int]:
        return list(range(1 - self.config.n_obs_steps, 1))

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(1 - self.config.n_obs_steps, 1 - self.config.n_obs_steps + self.config.horizon))

    def optimizer_param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "betas": self.config.optimizer_betas,
                 "eps": self.config.optimizer_eps}]

    def reset(self) -> None:
        super().reset()
        self._history.clear()

    def _has_time_dim(self, obs: dict[str, Tensor]) -> bool:
        name, feature = next(iter(self.input_features.items()))
        return obs[name].ndim == len(feature.shape) + 2

    def _push(self, obs: dict[str, Tensor]) -> None:
        while len(self._history) < self.config.n_obs_steps - 1:  # a new episode: repeat the first frame
            self._history.append(obs)
        self._history.append(obs)

    def _history_batch(self) -> dict[str, Tensor]:
        return {k: torch.stack([o[k] for o in self._history], dim=1) for k in self.input_features}  # (B, S, ...)

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict, noise=None, step_noise=None, generator=None) -> Tensor:
        """Raw actions (B, n_action_steps, A). `observation`: one step (B, ...) appended to the history,
        or a full history (B, n_obs_steps, ...). `noise` (B, horizon, A) and `step_noise` / `generator`
        fix the sampling randomness."""
        obs = self._check_observation(observation)
        if self._has_time_dim(obs):
            steps = next(iter(obs.values())).shape[1]
            if steps != self.config.n_obs_steps:
                raise ValueError(f"observation history has {steps} steps; n_obs_steps is {self.config.n_obs_steps}")
        else:
            self._push(obs)
            obs = self._history_batch()
        return self.normalizer.unnormalize("action", self._predict_chunk(self.normalizer(obs), noise, step_noise, generator))

    def _predict_chunk(self, obs: dict[str, Tensor], noise=None, step_noise=None, generator=None) -> Tensor:
        """Normalized observation history -> normalized actions (B, n_action_steps, A), at least float32."""
        with self._evaluating():
            global_cond = self.model.global_condition(self._to_network_dtype(obs), self.image_features)
            actions = self.model.generate_actions(global_cond, noise, step_noise, generator)  # (B, horizon, A)
        start = self.config.n_obs_steps - 1  # the trajectory starts at the oldest observation step
        return actions[:, start : start + self.config.n_action_steps]

    @torch.no_grad()
    def select_action(self, observation: dict, noise=None, step_noise=None, generator=None) -> Tensor:
        obs = self._check_observation(observation)
        self._push(obs)
        if not self._action_queue:
            history = self.normalizer(self._history_batch())
            chunk = self.normalizer.unnormalize("action", self._predict_chunk(history, noise, step_noise, generator))
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    def compute_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """MSE between the U-Net's prediction and the noise (or clean actions) at a random diffusion step."""
        batch = dict(batch)
        for key in self.input_features:
            if batch[key].ndim == len(self.input_features[key].shape) + 1:  # no time axis: one obs step
                batch[key] = batch[key].unsqueeze(1)
            if batch[key].shape[1] != self.config.n_obs_steps:
                raise ValueError(
                    f"Diffusion.forward: {key!r} has {batch[key].shape[1]} steps; n_obs_steps is {self.config.n_obs_steps}"
                )
        actions = batch["action"]  # (B, horizon, A)
        if actions.ndim != 3 or actions.shape[1] != self.config.horizon:
            raise ValueError(f"Diffusion.forward: 'action' has shape {tuple(actions.shape)}; expected (B, {self.config.horizon}, A)")
        global_cond = self.model.global_condition(batch, self.image_features)
        scheduler = self.model.scheduler
        eps = torch.randn(actions.shape, device=actions.device, dtype=actions.dtype)
        t = torch.randint(0, scheduler.num_train_timesteps, (actions.shape[0],), device=actions.device).long()
        pred = self.model.unet(scheduler.add_noise(actions, eps, t), t, global_cond)
        loss = F.mse_loss(pred, scheduler.training_target(actions, eps), reduction="none")
        if self.config.do_mask_loss_for_padding and "action_is_pad" in batch:
            loss = loss * (~batch["action_is_pad"]).unsqueeze(-1)
        loss = loss.mean()
        return loss, {"loss": loss.item()}
