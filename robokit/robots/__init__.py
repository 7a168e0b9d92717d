"""Robots: named joints and cameras in, actions out (see `robot.Robot`).

`make_robot("so101_follower", port=..., id=...)` builds a robot by type name
(`robokit.robots.registry`); imports of the drivers are lazy so `import robokit.robots` stays light.
"""

from robokit.robots.robot import (
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    Robot,
    RobotConfig,
)

__all__ = [
    "Robot",
    "RobotConfig",
    "DeviceNotConnectedError",
    "DeviceAlreadyConnectedError",
    "make_robot",
    "make_teleoperator",
]


def __getattr__(name):
    if name in ("make_robot", "make_teleoperator", "ROBOTS", "TELEOPERATORS"):
        from robokit.robots import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'robokit.robots' has no attribute {name!r}")
