"""Training: the loop (`train`), its options (`TrainConfig`), checkpoints with exact resume, EMA."""

from robokit.training.config import RECIPES, TrainConfig, TrainResult
from robokit.training.trainer import train

__all__ = ["RECIPES", "TrainConfig", "TrainResult", "train"]
