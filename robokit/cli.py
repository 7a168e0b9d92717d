"""`robokit <command> [options]`: a thin dispatcher over the registry in robokit.commands."""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import sys
import traceback
from typing import Sequence, TypeVar

import robokit
from robokit import errors
from robokit.commands import COMMANDS

T = TypeVar("T")


def setup_logging(verbose: bool = False) -> None:
    """robokit's own INFO lines; other libraries' (absl, OpenGL, httpx, ...) only at WARNING, all of it with --verbose."""
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("robokit").setLevel(logging.DEBUG if verbose else logging.INFO)


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
        "usage: robokit [-v] <command> [options]      (robokit <command> --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "options:",
        "  -h, --help     show this message",
        "  --version      print the version",
        "  -v, --verbose  debug logging, and the traceback of an error (also after the command name)",
    ]
    return "\n".join(lines)


VERBOSE_FLAGS = ("-v", "--verbose")


def _take_verbose(args: list[str]) -> tuple[list[str], bool]:
    """Remove -v / --verbose from a command's options (not after a `--`), so it works anywhere."""
    end = args.index("--") if "--" in args else len(args)
    kept = [a for a in args[:end] if a not in VERBOSE_FLAGS]
    return kept + args[end:], len(kept) < end


def _silence_stdout() -> None:
    """The reader of our stdout went away (`robokit ... | head`): send what is left to /dev/null.

    Python flushes stdout at exit; without this, that flush fails a second time and prints an
    "Exception ignored" message (the recipe of the `signal` module's documentation).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _report(command: str, exc: BaseException, verbose: bool) -> int:
    """One or two lines for an expected error (the traceback too with --verbose); a bug keeps its traceback."""
    message = errors.user_message(exc)
    if message is None:
        traceback.print_exc()
        print(f"robokit {command}: internal error ({type(exc).__name__}); this is a bug, "
              "please report it with the traceback above", file=sys.stderr)
        return 1
    if verbose:
        traceback.print_exc()
    print(f"robokit {command}: error: {message}", file=sys.stderr)
    if not verbose:
        print("(run with --verbose for the traceback)", file=sys.stderr)
    return errors.exit_code(exc)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a closed pipe shows here, where it can be handled, not at exit
        return code
    except SystemExit:  # tyro's --help and usage errors exit this way, after printing
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        raise
    except BrokenPipeError:
        _silence_stdout()
        return 1


def _main(argv: list[str]) -> int:
    verbose = False
    while argv and argv[0] in VERBOSE_FLAGS:
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
    rest, verbose_after = _take_verbose(rest)
    verbose = verbose or verbose_after
    setup_logging(verbose)
    module_name, func_name = COMMANDS[name][0].split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        result = func(rest)
    except KeyboardInterrupt:
        print(f"robokit {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # expected errors become a message; bugs keep their traceback
        return _report(name, exc, verbose)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
