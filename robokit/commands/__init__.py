"""The registry of `robokit` subcommands.

Each entry maps a command name to "module:function". The function takes the remaining argv
(list[str]) and returns an exit code; it parses its own options (a config dataclass through
`robokit.cli.parse`) so that `robokit --help` and a
command's start-up import only what that command needs. Add a command with one line here.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line summary shown by `robokit --help`)
    "demo": ("robokit.commands.demo:main", "Run the embedded default job: record, inspect and load a synthetic dataset."),
    "dataset": ("robokit.commands.dataset:main", "Dataset tools: info, check, convert, merge, split, delete-episodes, recompute-stats, cache."),
}
