"""Training: the loop (`train`), its options (`TrainConfig`), named recipes, checkpoints with exact resume, EMA."""

from robokit.training.config import TrainConfig, TrainResult
from robokit.training.recipes import RECIPES, Recipe
from robokit.training.trainer import train

__all__ = ["RECIPES", "Recipe", "TrainConfig", "TrainResult", "train"]
