"""`robokit <command> [options]`: a thin dispatcher over the registry in robokit.commands."""

from __future__ import annotations

import difflib
import importlib
import logging
import sys
from typing import Sequence, TypeVar

import robokit
from robokit.commands import COMMANDS

T = TypeVar("T")


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def suggest(name: str, choices: Sequence[str]) -> str:
    """A "did you mean" hint for a mistyped name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def parse(config_type: type[T], args: Sequence[str], prog: str, description: str | None = None) -> T:
    """Parse `args` into a config dataclass with tyro (every field's docstring is its --help)."""
    import tyro

    return tyro.cli(config_type, args=list(args), prog=prog, description=description)


def parse_subcommands(configs: dict[str, type], args: Sequence[str], prog: str, description: str):
    """Parse `args` where the first one picks a config from `configs` (e.g. `robokit dataset info`)."""
    import tyro

    return tyro.extras.subcommand_cli_from_dict(
        dict(configs), args=list(args), prog=prog, description=description
    )


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        f"robokit {robokit.__version__} — end-to-end robot learning",
        "",
        "usage: robokit <command> [options]      (robokit <command> --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help     show this message", "  --version      print the version", "  -v, --verbose  debug logging"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = False
    while argv and argv[0] in ("-v", "--verbose"):
        verbose = True
        argv.pop(0)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"robokit {robokit.__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"robokit: unknown command {name!r}.{suggest(name, COMMANDS)}\n", file=sys.stderr)
        print(_usage(), file=sys.stderr)
        return 2
    setup_logging(verbose)
    module_name, func_name = COMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
