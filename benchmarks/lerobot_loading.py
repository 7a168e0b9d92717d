"""LeRobot 0.4.4's side of bench_loading.py: one round of DataLoader samples/s, in the reference LeRobot venv.

    /tmp/venv-lerobot/bin/python benchmarks/lerobot_loading.py --root DATASET [--samples 480]

Opens the dataset bench_loading.py recorded (LeRobot v3.0 layout) with `LeRobotDataset(root=...)`
and the same windows (side_by_side.loading_windows), and measures a shuffled DataLoader, batch 8,
with 0 and 2 workers (each from an empty decoder cache), after the first batch, as the robokit side does (side_by_side.loader_rate).
Camera frames come back as float32 in [0, 1] (LeRobot's only mode). Prints one RESULT line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lerobot.datasets import video_utils
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from side_by_side import emit, loader_rate, loading_windows

FPS = 30
CAMERAS = ("observation.images.front", "observation.images.wrist")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=480)
    parser.add_argument("--backend", default=None, help="LeRobot video_backend (default: its own choice)")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    out = {}
    for name, delta in loading_windows(FPS, CAMERAS).items():
        ds = LeRobotDataset("bench/loading", root=args.root, delta_timestamps=delta, video_backend=args.backend)
        for workers in (0, 2):
            # LeRobot keeps torchcodec decoders in a process-wide cache; forked workers that inherit open
            # decoders share their file offsets and fail ("Invalid data found"), so each measurement starts
            # with an empty cache, as a training run whose main process has not decoded yet does.
            video_utils._default_decoder_cache.clear()
            rate = loader_rate(ds, workers, args.samples)
            out[f"{name}/{workers}"] = rate
            print(f"LeRobot 0.4.4 ({ds.video_backend}) window={name:9s} workers={workers}: {rate:7.1f} samples/s",
                  flush=True)
    emit(out)


if __name__ == "__main__":
    main()
