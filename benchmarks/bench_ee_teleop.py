"""Keyboard end-effector control: time of one IK step and of EndEffectorTeleop.get_action on a virtual SO-101.

    python benchmarks/bench_ee_teleop.py [--ticks 300]

Prints microseconds per forward kinematics, per damped-least-squares step, and per get_action with
no key / one key / two keys held (the IK work a teleoperation tick adds).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from robokit.commands.hardware import TeleopArgs
from robokit.robots.kinematics import SO101_CHAIN, ik_step
from robokit.robots.registry import make_robot
from robokit.robots.virtual import VirtualArm


def per_call_us(fn, n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300)
    args = parser.parse_args()
    q = np.array([0.1, -0.2, 0.4, 0.1, 0.0])
    target = SO101_CHAIN.position(q) + [0.002, 0.0, 0.0]
    print(f"forward kinematics: {per_call_us(lambda: SO101_CHAIN.position(q), args.ticks):8.1f} us")
    print(f"one DLS IK step:    {per_call_us(lambda: ik_step(SO101_CHAIN, q, target), args.ticks):8.1f} us")
    os.environ.pop("DISPLAY", None)
    with tempfile.TemporaryDirectory() as tmp, VirtualArm("so101", "b", tmp) as arm:
        robot = make_robot("so101_follower", port=arm.port, id="b", calibration_dir=tmp)
        teleop = TeleopArgs(type="keyboard", ee_speed=0.05).build_for(robot, 30)
        with robot, teleop:
            for keys in ((), ("up",), ("up", "shift")):
                for key in keys:
                    teleop.source.press(key)
                label = "+".join(keys) or "no key"
                print(f"get_action, {label:9s}: {per_call_us(teleop.get_action, args.ticks):8.1f} us")
                for key in keys:
                    teleop.source.release(key)


if __name__ == "__main__":
    main()
