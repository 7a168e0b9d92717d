"""Robots: named joints and cameras in, actions out (see `robot.Robot`).

`make_robot(config)` builds a robot from its config; configs are registered by type name in
`robokit.robots.registry`. Imports are lazy so that `import robokit.robots` stays light.
"""

from robokit.robots.robot import (
    DeviceAlreadyConnectedError,
    DeviceNotConnectedError,
    Robot,
    RobotConfig,
)

__all__ = ["Robot", "RobotConfig", "DeviceNotConnectedError", "DeviceAlreadyConnectedError"]
