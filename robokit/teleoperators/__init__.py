"""Teleoperators: leader arms, keyboard, gamepad (see `teleoperator.Teleoperator`)."""

from robokit.teleoperators.teleoperator import Teleoperator, TeleoperatorConfig

__all__ = ["Teleoperator", "TeleoperatorConfig"]
