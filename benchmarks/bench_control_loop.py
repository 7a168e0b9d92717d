"""Achieved loop rate of teleoperate and record on virtual SO-101 arms with two synthetic 480x640 cameras.

Goal: 30 fps held with < 2% late ticks. The virtual arms run in a separate process.

    python benchmarks/bench_control_loop.py [--seconds 10] [--codec av1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--codec", default="av1")
    args = parser.parse_args()

    from robokit.cameras import CameraConfig
    from robokit.control.record import record
    from robokit.control.teleoperate import teleoperate_loop
    from robokit.robots.registry import make_robot, make_teleoperator

    with tempfile.TemporaryDirectory() as tmp:
        cal = Path(tmp) / "cal"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "robokit.cli",
                "virtual-arm",
                "so101",
                "so101_leader",
                "--id",
                "b",
                "--calibration-dir",
                str(cal),
                "--animate",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            follower_port = proc.stdout.readline().split()[1]
            leader_port = proc.stdout.readline().split()[1]
            cams = {
                name: CameraConfig("synthetic", width=640, height=480, fps=args.fps)
                for name in ("front", "wrist")
            }
            robot = make_robot(
                "so101_follower", port=follower_port, id="b", calibration_dir=str(cal), cameras=cams
            )
            teleop = make_teleoperator("so101_leader", port=leader_port, id="b", calibration_dir=str(cal))
            with robot, teleop:
                timer = teleoperate_loop(robot, teleop, args.fps, args.seconds)
                print(f"teleoperate: {timer.report()}")
                _, timer = record(
                    robot,
                    teleop,
                    Path(tmp) / "ds",
                    "bench",
                    fps=args.fps,
                    num_episodes=1,
                    episode_time_s=args.seconds,
                    reset_time_s=0,
                    keyboard=False,
                    video_codec=args.codec,
                )
                print(f"record ({args.codec}, 2 cameras 480x640): {timer.report()}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
