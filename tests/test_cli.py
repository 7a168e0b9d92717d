"""The `robokit` entry point: version, help, did-you-mean, every command documents its options."""

from __future__ import annotations

import subprocess
import sys

import pytest

import robokit
from robokit.cli import main
from robokit.commands import COMMANDS


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"robokit {robokit.__version__}"


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name} " in out


def test_mistyped_command_gets_a_suggestion(capsys):
    assert main(["datset"]) == 2
    assert "Did you mean 'dataset'?" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_mistyped_option_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "dataset", "--episode", "2"])
    assert exit_info.value.code != 0
    captured = capsys.readouterr()
    assert "--episodes" in captured.out + captured.err


def test_import_robokit_is_light():
    code = "import sys, robokit; heavy = [m for m in ('torch', 'pyarrow', 'av', 'tyro') if m in sys.modules]; print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
