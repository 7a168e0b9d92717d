"""Achieved loop rate of teleoperate and record on virtual SO-101 arms with two synthetic 480x640 cameras.

Goal: 30 fps held with < 2% late ticks. The virtual arms run in a separate process.

    python benchmarks/bench_control_loop.py [--seconds 10] [--codec av1]
    # A/B on a busy machine: interleaved rounds of record with the codecs' worker threads at
    # nice +0 and at +10 (the default)
    python benchmarks/bench_control_loop.py --skip-teleop --encoder-niceness 0 10 --rounds 3

Each record run prints its loop report, the late ticks, the worst tick, and how many frames each
video holds (every tick must be in the video: the fix for late ticks may not drop frames).
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
    parser.add_argument(
        "--encoder-niceness",
        type=int,
        nargs="+",
        default=None,
        help="nice increments of the codecs' worker threads to compare (default: the library's)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the record runs, interleaving the settings"
    )
    parser.add_argument("--skip-teleop", action="store_true")
    args = parser.parse_args()

    from robokit.cameras import CameraConfig
    from robokit.control.record import record
    from robokit.control.teleoperate import teleoperate_loop
    from robokit.data import RobotDataset, video_encode
    from robokit.data.video_encode import video_frame_count
    from robokit.robots.registry import make_robot, make_teleoperator

    settings = args.encoder_niceness or [video_encode.DEFAULT_ENCODER_NICENESS]
    results: dict[int, list[float]] = {n: [] for n in settings}
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
                if not args.skip_teleop:
                    timer = teleoperate_loop(robot, teleop, args.fps, args.seconds)
                    print(f"teleoperate: {timer.report()}")
                run = 0
                for _ in range(args.rounds):
                    for niceness in settings:
                        video_encode.DEFAULT_ENCODER_NICENESS = niceness
                        root = Path(tmp) / f"ds{run}"
                        run += 1
                        _, timer = record(
                            robot,
                            teleop,
                            root,
                            "bench",
                            fps=args.fps,
                            num_episodes=1,
                            episode_time_s=args.seconds,
                            reset_time_s=0,
                            keyboard=False,
                            video_codec=args.codec,
                        )
                        results[niceness].append(100 * timer.late_ticks / max(1, timer.ticks))
                        ds = RobotDataset(root)
                        frames = {
                            key.rsplit(".", 1)[-1]: video_frame_count(ds.meta.video_file(0, key))
                            for key in ds.meta.video_keys
                        }
                        print(
                            f"record ({args.codec}, codec threads nice +{niceness}, 2 cameras 480x640): {timer.report()}; "
                            f"worst tick {1e3 * max(timer.tick_durations):.0f} ms; "
                            f"video frames {frames} for {timer.ticks} ticks",
                            flush=True,
                        )
        finally:
            proc.terminate()
            proc.wait()
    if args.rounds > 1 or len(settings) > 1:
        for niceness, late in results.items():
            shown = ", ".join(f"{x:.1f}" for x in late)
            print(
                f"codec threads nice +{niceness}: late ticks % per run [{shown}], mean {sum(late) / len(late):.1f}%"
            )


if __name__ == "__main__":
    main()
