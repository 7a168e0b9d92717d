"""DDPM and DDIM noise schedules for diffusion policies (Ho et al. 2020; Song et al. 2021).

Formulas and defaults follow the diffusers schedulers that Diffusion Policy used ("leading"
timestep spacing, fixed-small DDPM variance, x0 clipping, `set_alpha_to_one` for DDIM), computed in
float32 so that sampled actions match those implementations to float precision.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

BETA_SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")
PREDICTION_TYPES = ("epsilon", "sample")


def make_betas(kind: str, n: int, beta_start: float, beta_end: float) -> Tensor:
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, n, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32) ** 2
    if kind == "squaredcos_cap_v2":  # Nichol & Dhariwal 2021: alpha_bar(t) = cos^2((t + s) / (1 + s) * pi / 2)
        def alpha_bar(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor(
            [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)], dtype=torch.float32
        )
    raise ValueError(f"beta_schedule={kind!r}; expected one of {BETA_SCHEDULES}")


class NoiseScheduler:
    """Forward noising for training and the reverse DDPM/DDIM steps for sampling."""

    def __init__(
        self,
        kind: str = "DDPM",
        num_train_timesteps: int = 100,
        beta_schedule: str = "squaredcos_cap_v2",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
    ):
        if kind.upper() not in ("DDPM", "DDIM"):
            raise ValueError(f"noise_scheduler_type={kind!r}; expected 'DDPM' or 'DDIM'")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type={prediction_type!r}; expected one of {PREDICTION_TYPES}")
        self.kind = kind.upper()
        self.num_train_timesteps = num_train_timesteps
        self.prediction_type = prediction_type
        self.clip_sample, self.clip_sample_range = clip_sample, clip_sample_range
        self.betas = make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,) float32
        self.one = torch.tensor(1.0)

    # ------------------------------------------------------------------ training
    def add_noise(self, x0: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
        """q(x_t | x_0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; timesteps (B,) long."""
        abar = self.alphas_cumprod.to(x0.device)[timesteps].to(x0.dtype)
        abar = abar.reshape(-1, *([1] * (x0.ndim - 1)))
        return abar**0.5 * x0 + (1 - abar) ** 0.5 * noise

    def training_target(self, x0: Tensor, noise: Tensor) -> Tensor:
        return noise if self.prediction_type == "epsilon" else x0

    # ------------------------------------------------------------------ sampling
    def timesteps(self, num_inference_steps: int) -> list[int]:
        """Evenly spaced, descending: e.g. T=100, 5 steps -> [80, 60, 40, 20, 0]."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps={num_inference_steps}; expected 1..num_train_timesteps ({self.num_train_timesteps})"
            )
        ratio = self.num_train_timesteps // num_inference_steps
        return [i * ratio for i in reversed(range(num_inference_steps))]

    def _abar(self, t: int) -> Tensor:
        return self.alphas_cumprod[t] if t >= 0 else self.one

    def step(
        self, model_output: Tensor, t: int, sample: Tensor, num_inference_steps: int, variance_noise: Tensor | None
    ) -> Tensor:
        """x_t -> x_{t - T/num_inference_steps}. DDPM adds `variance_noise` (standard normal) when t > 0."""
        prev_t = t - self.num_train_timesteps // num_inference_steps
        abar_t, abar_prev = self._abar(t), self._abar(prev_t)
        beta_prod_t = 1 - abar_t
        if self.prediction_type == "epsilon":
            x0 = (sample - beta_prod_t**0.5 * model_output) / abar_t**0.5
            eps = model_output
        else:
            x0 = model_output
            eps = (sample - abar_t**0.5 * x0) / beta_prod_t**0.5
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        if self.kind == "DDIM":  # deterministic (eta = 0)
            return abar_prev**0.5 * x0 + (1 - abar_prev) ** 0.5 * eps
        alpha_t = abar_t / abar_prev
        beta_t = 1 - alpha_t
        x0_coeff = abar_prev**0.5 * beta_t / beta_prod_t
        xt_coeff = alpha_t**0.5 * (1 - abar_prev) / beta_prod_t
        prev = x0_coeff * x0 + xt_coeff * sample  # posterior mean
        if t > 0:
            variance = ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp(min=1e-20)
            if variance_noise is None:
                variance_noise = torch.randn_like(model_output)
            prev = prev + variance**0.5 * variance_noise
        return prev

    def sample(
        self,
        denoise: Callable[[Tensor, Tensor], Tensor],
        noise: Tensor,
        num_inference_steps: int,
        step_noise: Sequence[Tensor] | Callable[[int, Tensor], Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Run the reverse process from `noise`.

        denoise(x_t, t_batch) -> model output. DDPM's per-step noise comes from `step_noise`
        (a list, one tensor per step with t > 0, or a function (step, like) -> tensor), else from
        `generator`, else from the global RNG.
        """
        x = noise
        for i, t in enumerate(self.timesteps(num_inference_steps)):
            out = denoise(x, torch.full(x.shape[:1], t, dtype=torch.long, device=x.device))
            var_noise = None
            if self.kind == "DDPM" and t > 0:
                if callable(step_noise):
                    var_noise = step_noise(i, out)
                elif step_noise is not None:
                    var_noise = step_noise[i].to(out.device, out.dtype)
                elif generator is not None:
                    var_noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            x = self.step(out, t, x, num_inference_steps, var_noise)
        return x
