"""Flow matching for action chunks: the pieces SmolVLA, π0 and π0.5 share.

The action expert learns a velocity field that carries Gaussian noise (t = 1) to an action chunk
(t = 0) along straight lines:

    x_t = t * noise + (1 - t) * actions          target velocity u = noise - actions
    loss = || v_theta(x_t, t, observation) - u ||^2

and acting integrates that field with Euler steps from t = 1 down to t = 0. Time is sampled
from Beta(1.5, 1) squeezed into [0.001, 1], which puts more training weight on noisy inputs
(the choice published with π0 and kept by SmolVLA).

The prefix-LM attention mask is shared too: image and language tokens (the prefix) attend to
each other bidirectionally, the state and action tokens (the suffix) see the whole prefix, and
`ar_mask` marks where a new causal block starts.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

# Sinusoidal time embedding periods (π0 / SmolVLA): fine enough for t near 0, broad enough for t near 1.
MIN_PERIOD = 4e-3
MAX_PERIOD = 4.0


def sample_time(batch_size: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None,
                alpha: float = 1.5, beta: float = 1.0) -> Tensor:
    """Training times in [0.001, 1], Beta(alpha, beta) distributed -> (B,) float32."""
    if generator is None:
        draw = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(beta)).sample((batch_size,))
    else:
        # Beta(a, b) = Ga / (Ga + Gb); torch's Beta takes no generator, so seeded runs draw the Gammas here.
        ga, gb = _gamma(alpha, batch_size, generator), _gamma(beta, batch_size, generator)
        draw = ga / (ga + gb)
    return (draw * 0.999 + 0.001).to(device=device, dtype=torch.float32)


def _gamma(shape: float, n: int, generator: torch.Generator) -> Tensor:
    """Gamma(shape, 1) samples from a seeded generator (Marsaglia-Tsang, with the shape < 1 boost)."""
    boost = shape < 1.0
    d = (shape + 1.0 if boost else shape) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(n)
    filled = 0
    while filled < n:
        z = torch.randn(2 * (n - filled), generator=generator)
        u = torch.rand(2 * (n - filled), generator=generator)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-30)) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-30)))
        got = (d * v)[ok][: n - filled]
        out[filled : filled + len(got)] = got
        filled += len(got)
    if boost:
        out = out * torch.rand(n, generator=generator) ** (1.0 / shape)
    return out


def noisy_actions(actions: Tensor, noise: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T, A) actions and noise, (B,) time -> (x_t, target velocity), both (B, T, A)."""
    t = time[:, None, None].to(actions.dtype)
    return t * noise + (1 - t) * actions, noise - actions


def sinusoidal_time_embedding(time: Tensor, dim: int, min_period: float = MIN_PERIOD,
                              max_period: float = MAX_PERIOD) -> Tensor:
    """(B,) time -> (B, dim) [sin | cos] features, computed in float64 (as the references do) then float32."""
    if dim % 2:
        raise ValueError(f"sinusoidal_time_embedding: dim must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2 * math.pi / period)[None, :] * time.to(torch.float64)[:, None]  # (B, dim/2)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(torch.float32)


def euler_sample(velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, num_steps: int,
                 on_step: Callable[[int, Tensor, Tensor], None] | None = None) -> Tensor:
    """Integrate dx/dt = velocity(x_t, t) from t = 1 (noise) to t = 0 in `num_steps` Euler steps.

    `velocity(x_t, t)` gets x_t (B, T, A) and t (B,) and returns (B, T, A); `on_step(i, t, v)` sees each
    step's velocity (for parity checks and real-time chunking guidance).
    """
    if num_steps < 1:
        raise ValueError(f"euler_sample: num_steps must be >= 1, got {num_steps}")
    dt = -1.0 / num_steps
    x = noise
    batch = noise.shape[0]
    for i in range(num_steps):
        t = torch.full((batch,), 1.0 + i * dt, dtype=torch.float32, device=noise.device)
        v = velocity(x, t)
        if on_step is not None:
            on_step(i, t, v)
        x = x + dt * v
    return x


def prefix_lm_mask(pad_mask: Tensor, ar_mask: Tensor) -> Tensor:
    """(B, L) token validity and (B, L) or (L,) block starts -> (B, L, L) bool: may query i attend to key j.

    A token attends to every valid token whose block (cumulative count of `ar_mask`) is not after its own:
    ar_mask [0, 0, 0, 1, 1] = a bidirectional prefix of 3, then two causal tokens.
    """
    ar_mask = ar_mask.expand_as(pad_mask).to(torch.int64)
    block = torch.cumsum(ar_mask, dim=1)  # (B, L)
    allowed = block[:, None, :] <= block[:, :, None]  # (B, L query, L key)
    valid = pad_mask[:, None, :] & pad_mask[:, :, None]
    return allowed & valid


def pad_last_dim(x: Tensor, size: int) -> Tensor:
    """Zero-pad (..., d) to (..., size): state and action vectors to the model's fixed max dims."""
    if x.shape[-1] > size:
        raise ValueError(f"pad_last_dim: last dimension {x.shape[-1]} is larger than the model's {size}")
    if x.shape[-1] == size:
        return x
    return torch.nn.functional.pad(x, (0, size - x.shape[-1]))
