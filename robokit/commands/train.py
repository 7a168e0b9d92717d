"""`robokit train --dataset ROOT_OR_REPO --policy act [--steps N] [--env pusht] [--resume]`,
`robokit train --recipe NAME --dataset ROOT [flags that override the recipe]`,
`robokit train --dataset ROOT --init PATH_OR_REPO` (fine-tune a pretrained policy)."""

from __future__ import annotations

import dataclasses
import logging
import os

from robokit.errors import UsageError

DESCRIPTION = """Train a policy on an episode dataset.

--recipe NAME starts from a named recipe (policy, policy args and training options as published);
any other flag overrides the recipe's value. Recipes: {recipes}.
Several processes: torchrun --nproc_per_node N -m robokit.cli train ... [--distributed fsdp]."""


def _take_recipe(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the --recipe value, the other arguments)."""
    rest, name, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--recipe":
            if i + 1 >= len(argv):
                raise ValueError("--recipe needs a name")
            name, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--recipe="):
            name = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return name, rest


def parse_args(argv: list[str]):
    """argv -> TrainConfig: the recipe's values (if --recipe is given), then the other flags over them."""
    import tyro

    from robokit.training import TrainConfig
    from robokit.training.recipes import RECIPES, get_recipe

    recipe_name, argv = _take_recipe(list(argv))
    recipe = get_recipe(recipe_name) if recipe_name else None
    default = None
    if recipe is not None:
        # tyro starts from the recipe's values; policy_args given on the command line are appended to the
        # recipe's below (later key=value items win), the other flags replace the recipe's values
        default = dataclasses.replace(TrainConfig.from_recipe(recipe.name), policy_args=())
    description = DESCRIPTION.format(recipes=", ".join(RECIPES))
    cfg = tyro.cli(TrainConfig, args=argv, prog="robokit train", description=description, default=default)
    if recipe is not None:
        cfg.policy_args = tuple(recipe.policy_args) + tuple(cfg.policy_args)
    return cfg


def main(argv: list[str]) -> int:
    from robokit.training import train

    try:
        cfg = parse_args(argv)
    except ValueError as e:  # an unknown recipe, a bad option value
        raise UsageError(str(e)) from e
    if not cfg.dataset:
        raise UsageError("--dataset is required (a dataset folder or hub repo id)")
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: rank 0 reports; the others only warnings and errors
        logging.getLogger("robokit").setLevel(logging.WARNING)
    result = train(cfg)
    if result.rank == 0:  # one line for the run, not one per process
        print(f"trained {result.steps} steps, final loss {result.final_loss:.4f}; outputs in {result.output_dir}")
    return 0
