"""robokit: end-to-end robot learning — hardware, episode datasets, policies, async inference.

`import robokit` is kept light: heavy modules (torch, pyarrow, av) load only when a name that
needs them is first used, e.g. `robokit.RobotDataset`.
"""

__version__ = "0.1.0"

_LAZY = {
    "RobotDataset": "robokit.data.dataset",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robokit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
