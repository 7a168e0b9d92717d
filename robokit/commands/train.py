"""`robokit train --dataset ROOT_OR_REPO --policy act [--steps N] [--env pusht] [--resume]`."""

from __future__ import annotations

from robokit.cli import parse


def main(argv: list[str]) -> int:
    from robokit.training import TrainConfig, train

    cfg = parse(TrainConfig, argv, prog="robokit train", description="Train a policy on an episode dataset.")
    if not cfg.dataset:
        print("robokit train: --dataset is required (a dataset folder or hub repo id)")
        return 2
    result = train(cfg)
    print(f"trained {result.steps} steps, final loss {result.final_loss:.4f}; outputs in {result.output_dir}")
    return 0
