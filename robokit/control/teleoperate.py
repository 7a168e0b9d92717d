"""Leader -> follower at a fixed rate, with a timing report."""

from __future__ import annotations

import logging

from robokit.control.timing import LoopTimer
from robokit.robots.robot import Robot
from robokit.teleoperators.teleoperator import Teleoperator

logger = logging.getLogger(__name__)


def teleoperate_loop(
    robot: Robot,
    teleop: Teleoperator,
    fps: float,
    duration_s: float | None = None,
    observe: bool = True,
    timer: LoopTimer | None = None,
    should_stop=None,
) -> LoopTimer:
    """Run until `duration_s` (or forever / Ctrl-C / `should_stop()`); returns the timer with its figures."""
    timer = timer or LoopTimer(fps)
    while duration_s is None or timer.elapsed < duration_s:
        if should_stop is not None and should_stop():
            break
        if observe:
            with timer.stage("read"):
                robot.get_observation()
        with timer.stage("teleop"):
            action = teleop.get_action()
        with timer.stage("send"):
            robot.send_action(action)
        timer.wait()
    return timer
