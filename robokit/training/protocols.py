"""What the trainer asks of a policy beyond `Policy`'s interface, when a run uses the feature.

A policy implements these methods when it can; nothing needs to import this module (the protocols are
structural). The VLAs (smolvla, pi0, pi05) are the intended implementers.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import nn


@runtime_checkable
class SupportsGradientCheckpointing(Protocol):
    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute the activations of the heavy blocks (backbone and expert layers) in backward."""


@runtime_checkable
class DefinesFSDPUnits(Protocol):
    def fsdp_units(self) -> list[nn.Module]:
        """The submodules FSDP shards as units of their own (each gathered only while its forward runs), e.g.
        the decoder layers of the backbone and of the action expert when they are called as `layer(x)`. Each
        unit's parameters must be used only inside its own forward. Default: none (the policy is one unit)."""


def enable_gradient_checkpointing(policy: nn.Module) -> None:
    """Turn gradient checkpointing on, or say clearly that this policy type cannot."""
    if not isinstance(policy, SupportsGradientCheckpointing):
        kind = getattr(getattr(policy, "config", None), "type", type(policy).__name__)
        raise ValueError(f"gradient_checkpointing: policy type {kind!r} does not support it (it has no "
                         "set_gradient_checkpointing); run without --gradient-checkpointing")
    policy.set_gradient_checkpointing(True)
