"""Exponential moving average of a policy's weights (Diffusion Policy evaluates with it)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn


class EMA:
    """shadow <- d * shadow + (1 - d) * weight after each optimizer step, d warming up to `decay`."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay}; expected a value in (0, 1)")
        self.decay = decay
        self.steps = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1 - d)

    def gathered(self) -> "EMA":
        """A copy holding full tensors (FSDP's shadow is sharded like the parameters): a collective, so every
        process calls it; the copy is for saving."""
        out = EMA.__new__(EMA)
        out.decay, out.steps = self.decay, self.steps
        out.shadow = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).cpu() for k, v in self.shadow.items()}
        return out

    def state_dict(self) -> dict[str, Tensor]:
        return {**{k: v.cpu().contiguous() for k, v in self.shadow.items()}, "__steps__": torch.tensor(self.steps)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.steps = int(state["__steps__"])
        for k, shadow in self.shadow.items():
            if hasattr(shadow, "device_mesh"):  # FSDP: keep this process's shard of the full tensor
                from torch.distributed.tensor import distribute_tensor

                full = state[k].to(shadow.device, shadow.dtype)
                shadow.to_local().copy_(distribute_tensor(full, shadow.device_mesh, shadow.placements).to_local())
            else:
                shadow.copy_(state[k])

    def export(self, policy: nn.Module, directory: Path) -> None:
        """Overwrite directory/model.safetensors (written by save_pretrained) with the EMA weights."""
        weights = {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v).detach().cpu().contiguous()
                   for k, v in policy.state_dict().items()}
        save_file(weights, str(Path(directory) / "model.safetensors"), metadata={"format": "pt", "ema": str(self.decay)})
