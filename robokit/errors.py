"""Expected failures: what the CLI reports in a line or two instead of a traceback.

An error is *expected* when it is about the user's input or surroundings, not about robokit's code:
a bad value, a missing file or package, a network or device that does not answer. Code anywhere in
robokit raises the built-in kind that fits (ValueError, FileNotFoundError, ConnectionError,
TimeoutError, ImportError, ...) with a message that names the value and what to do, or a
`RobokitError` when no built-in kind fits; `robokit.cli.main` turns each into

    robokit <command>: error: <message>
    (run with --verbose for the traceback)

Everything else (TypeError, AttributeError, IndexError, ...) is a bug and keeps its traceback.
"""

from __future__ import annotations

try:  # a vanished tty fails in termios calls with termios.error, which is not an OSError
    from termios import error as _TermiosError
except ImportError:  # Windows
    _TermiosError = OSError


class RobokitError(Exception):
    """An expected failure whose message tells the user what went wrong and what to do."""

    exit_code: int = 1


class UsageError(RobokitError, ValueError):
    """The command line asks for something that does not exist or does not fit (exit code 2)."""

    exit_code = 2


class NotCalibratedError(RobokitError, RuntimeError):
    """A device or motor has no (matching) calibration, so it refuses to move or to convert units."""


class HardwareSetupError(RobokitError, RuntimeError):
    """The hardware is not set up as the command expects (e.g. two motors where setup wants one)."""


# The built-in kinds that mean "bad input or surroundings". OSError covers FileNotFoundError,
# FileExistsError, PermissionError, ConnectionError, TimeoutError, serial.SerialException and
# the HTTP errors of requests / huggingface_hub.
EXPECTED = (RobokitError, ValueError, OSError, ImportError, EOFError, _TermiosError)


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an expected error, or None when `exc` looks like a bug."""
    if isinstance(exc, KeyError):
        # KeyError('some.key') from a dict lookup is a bug; KeyError("unknown action key ...") is a message
        text = exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else ""
        return text if " " in text else None
    if isinstance(exc, EOFError):
        return str(exc) or "input ended (stdin is closed or empty) while waiting for an answer; run it in a terminal"
    if not isinstance(exc, EXPECTED):
        return None
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] == "robokit":
        return None  # robokit's own modules are always there: failing to import one is a bug
    text = str(exc).strip()
    if isinstance(exc, ModuleNotFoundError) and text.startswith("No module named") and exc.name:
        text += f"; install the package that provides {exc.name.split('.')[0]!r} (see the README's Install section)"
    return text or type(exc).__name__


def exit_code(exc: BaseException) -> int:
    """2 for usage errors, 1 for every other failure."""
    return getattr(exc, "exit_code", 1)


def install_hint(extra: str) -> str:
    """A command that installs robokit's optional `extra` into the running Python.

    robokit is installed from its checkout (scripts/setup.sh), not from a package index, so the
    command names the checkout and its constraints file (which pins torch to its CPU build).
    """
    import shlex
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    if not (root / "pyproject.toml").is_file():  # an installed wheel, not a checkout
        return f"{pip} 'robokit[{extra}]'"
    constraints = root / "constraints.txt"
    pin = f" -c {shlex.quote(str(constraints))}" if constraints.is_file() else ""
    return f"{pip}{pin} -e {shlex.quote(f'{root}[{extra}]')}"
