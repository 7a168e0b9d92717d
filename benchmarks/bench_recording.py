"""Recording throughput: two 480x640 cameras + 14-dim state/action, as in issue 2's baseline table.

    .venv/bin/python benchmarks/bench_recording.py [--episodes 4] [--frames 150] [--runs 3] [--codec av1]

Prints (a) frames/s recording as fast as possible (add_frame + save_episode + finalize, encoding
included) and (b) a paced 30 fps run: whether add_frame kept real time, and how long each
save_episode took. Frames are generated before timing so that only robokit is measured.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from robokit.data import RobotDataset
from robokit.data.synthetic import SyntheticEpisode, synthetic_features

FPS = 30


def make_frames(n_distinct: int) -> tuple[dict, list[dict]]:
    features = synthetic_features(height=480, width=640, state_dim=14)
    episode = SyntheticEpisode(features, seed=0)
    return features, [episode.frame(i, FPS) for i in range(n_distinct)]


def record(root: Path, features, frames, episodes: int, length: int, codec: str, pace: bool) -> dict:
    add_times, save_times = [], []
    start = time.perf_counter()
    ds = RobotDataset.create(root, fps=FPS, features=features, robot_type="bench", video_codec=codec)
    tick = time.perf_counter()
    for _ in range(episodes):
        for i in range(length):
            t0 = time.perf_counter()
            ds.add_frame(frames[i % len(frames)])
            add_times.append(time.perf_counter() - t0)
            if pace:
                tick += 1 / FPS
                time.sleep(max(0.0, tick - time.perf_counter()))
        t0 = time.perf_counter()
        ds.save_episode()
        save_times.append(time.perf_counter() - t0)
        tick = time.perf_counter()
    t0 = time.perf_counter()
    ds.finalize()
    finalize_s = time.perf_counter() - t0
    total = time.perf_counter() - start
    return {"fps": episodes * length / total, "add_ms": np.array(add_times) * 1e3, "save_s": save_times, "finalize_s": finalize_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150, help="frames per episode")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--codec", default="av1")
    parser.add_argument("--skip-paced", action="store_true")
    args = parser.parse_args()
    features, frames = make_frames(30)
    work = Path(tempfile.mkdtemp(prefix="robokit-bench-rec-"))
    try:
        rates = []
        for run in range(args.runs):
            result = record(work / f"fast{run}", features, frames, args.episodes, args.frames, args.codec, pace=False)
            rates.append(result["fps"])
            print(f"run {run}: {result['fps']:.1f} frames/s (save_episode {np.mean(result['save_s']):.2f} s avg, "
                  f"finalize {result['finalize_s']:.2f} s)")
        print(f"recording, unpaced, {args.codec}: median {statistics.median(rates):.1f} frames/s over {args.runs} runs "
              f"({args.episodes} episodes x {args.frames} frames, 2 cameras 480x640, 14-dim state/action)")
        if not args.skip_paced:
            result = record(work / "paced", features, frames, args.episodes, args.frames, args.codec, pace=True)
            add = result["add_ms"]
            late = int((add > 1000 / FPS).sum())
            print(f"recording, paced at {FPS} fps: add_frame p50 {np.percentile(add, 50):.1f} ms, p99 {np.percentile(add, 99):.1f} ms, "
                  f"max {add.max():.1f} ms, {late} of {len(add)} calls over one period; save_episode "
                  f"{', '.join(f'{s:.2f}' for s in result['save_s'])} s; finalize {result['finalize_s']:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
