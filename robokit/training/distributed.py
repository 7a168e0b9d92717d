"""Several training processes (torchrun): process group, DDP or FSDP wrapping, full state dicts, reductions.

    torchrun --nproc_per_node 2 -m robokit.cli train ... --distributed ddp    # a full replica per process
    torchrun --nproc_per_node 2 -m robokit.cli train ... --distributed fsdp   # parameters, gradients and
                                                                             # optimizer state sharded

DDP keeps a replica per process and averages gradients. FSDP (PyTorch's `fully_shard`, "FSDP2") keeps
1/world of each parameter, gradient and optimizer state per process and gathers a unit's parameters only
while the unit's `forward` runs. By default the whole policy is one unit (its parameters are gathered for
the step's forward and backward; gradients and AdamW's two moments, most of the memory, stay sharded). A
policy may name finer units with `fsdp_units() -> list[nn.Module]` (e.g. its decoder layers), each a module
whose parameters are used only inside its own `forward` call: code that calls `layer.q_proj(x)` rather than
`layer(x)`, or reads a weight in a parent's forward, would meet a still-sharded parameter, which is why the
trainer does not guess units.
Checkpoints hold full (unsharded) tensors written by rank 0, the same files as a one-process run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size, local rank and the strategy ('' in one process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    strategy: str = ""
    owns_group: bool = False
    """True when `init` started the process group (and `shutdown` ends it)."""

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def fsdp(self) -> bool:
        return self.strategy == "fsdp"


def init(strategy: str) -> Dist:
    """Join torchrun's process group (gloo on CPU, nccl with CUDA); one process: Dist() and nothing started."""
    if strategy not in STRATEGIES:
        raise ValueError(f"distributed={strategy!r}; expected one of {list(STRATEGIES)}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")), strategy, owns)


def shutdown(d: Dist) -> None:
    """End the process group `init` started (an exit without it makes NCCL warn about leaked resources)."""
    if d.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap(policy: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """The module the training step calls: the policy itself, a DDP wrapper, or the policy sharded in place."""
    if d.world <= 1:
        return policy
    if d.fsdp:
        from torch.distributed.fsdp import fully_shard

        for unit in reversed(fsdp_units(policy)):  # inner units before the ones that hold them
            fully_shard(unit)
        fully_shard(policy)  # the root: every parameter not in a unit above
        return policy
    # Gradients live in DDP's buckets (gradient_as_bucket_view) from the start: backward accumulates into
    # them in place, so a gradient has its bucket's layout whatever layout autograd produced it in. Without
    # this, the channels-last activations of the ResNet give 1x1 convolutions channels-last weight
    # gradients (equal strides except on the size-1 dims, which autograd's layout rule ignores and DDP's
    # check does not): "Grad strides do not match bucket view strides" and a copy per step.
    for p in policy.parameters():
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)
    return nn.parallel.DistributedDataParallel(
        policy, device_ids=[d.local_rank] if device.type == "cuda" else None, gradient_as_bucket_view=True
    )


def fsdp_units(policy: nn.Module) -> list[nn.Module]:
    """The submodules FSDP shards as units of their own: the policy's `fsdp_units()`, or none (see the module
    docstring for why there is no default guess)."""
    custom = getattr(policy, "fsdp_units", None)
    units = list(custom()) if callable(custom) else []
    modules = set(policy.modules())
    for unit in units:
        if unit not in modules or unit is policy:
            raise ValueError(f"{type(policy).__name__}.fsdp_units() returned {type(unit).__name__}, which is not a "
                             "submodule of the policy")
    return units


def mean(value: float, d: Dist, device: torch.device) -> float:
    """The average of `value` over the processes (every process gets it)."""
    if d.world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return float(t.item()) / d.world


def mean_logs(logs: dict, d: Dist, device: torch.device) -> dict:
    """Numeric logs averaged over the processes (one collective; every process calls it at the same step)."""
    keys = [k for k, v in logs.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    if d.world <= 1 or not keys:
        return logs
    t = torch.tensor([float(logs[k]) for k in keys], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return {**logs, **{k: float(v) / d.world for k, v in zip(keys, t.tolist())}}


def full_value(x: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP's sharded parameters, norms) as a full tensor; other tensors as they are."""
    return x.full_tensor() if hasattr(x, "full_tensor") else x


def full_state_dict(model: nn.Module, d: Dist) -> dict[str, torch.Tensor] | None:
    """The full state dict on CPU, gathered from the shards (a collective: every process calls it);
    rank 0 gets it, the others None. Outside FSDP: the module's own state dict."""
    if not d.fsdp:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if d.main else None


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, d: Dist) -> dict | None:
    """The optimizer's state with full tensors, keyed by parameter name (FSDP; a collective), on rank 0."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    state = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state if d.main else None


def load_full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Shard a full optimizer state (keyed by parameter name, as `full_optimizer_state` gives it) into `optimizer`."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def barrier(d: Dist) -> None:
    if d.world > 1:
        torch.distributed.barrier()
