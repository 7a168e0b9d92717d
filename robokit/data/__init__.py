"""The episode dataset: write, read, windows, video, stats, tools, hub (LeRobot v3.0 layout)."""

_LAZY = {
    "RobotDataset": "robokit.data.dataset",
    "DatasetMeta": "robokit.data.meta",
    "ImageTransforms": "robokit.data.transforms",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robokit.data' has no attribute {name!r}")
