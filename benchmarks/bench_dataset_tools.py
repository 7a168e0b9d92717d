"""Timings of the dataset tools on a synthetic recorded dataset (two cameras, AV1).

    .venv/bin/python benchmarks/bench_dataset_tools.py --episodes 10 --frames 150 --height 240 --width 320

Prints seconds and frames/s for check (first/last frame and --full), merge (the dataset with
itself), split (80/20), delete-episodes (one episode, to a new folder) and recompute-stats.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes to record")
    parser.add_argument("--frames", type=int, default=150, help="frames per episode")
    parser.add_argument("--height", type=int, default=240, help="camera height")
    parser.add_argument("--width", type=int, default=320, help="camera width")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from robokit.data import RobotDataset
    from robokit.data.synthetic import SyntheticEpisode, synthetic_features
    from robokit.data.tools.check import check_dataset
    from robokit.data.tools.edit import delete_episodes, split_dataset
    from robokit.data.tools.merge import merge_datasets
    from robokit.data.tools.stats_tools import recompute_stats

    work = Path(tempfile.mkdtemp(prefix="robokit-bench-tools-"))
    try:
        features = synthetic_features(height=args.height, width=args.width)
        start = time.perf_counter()
        ds = RobotDataset.create(work / "src", 30, features)
        for e in range(args.episodes):
            episode = SyntheticEpisode(features, seed=e)
            for i in range(args.frames):
                ds.add_frame(episode.frame(i, 30, task=f"task {e % 3}"))
            ds.save_episode()
        ds.finalize()
        frames = args.episodes * args.frames
        print(f"dataset: {args.episodes} episodes x {args.frames} frames, 2 cameras {args.height}x{args.width} AV1 "
              f"(recorded in {time.perf_counter() - start:.1f} s)")

        def timed(name: str, fn, n_frames: int = frames) -> None:
            t = time.perf_counter()
            result = fn()
            dt = time.perf_counter() - t
            ok = getattr(result, "ok", True)
            print(f"  {name:<28} {dt:7.2f} s  {n_frames / dt:9.0f} frames/s{'' if ok else '  (FAILED)'}")

        src = work / "src"
        check_dataset(src, progress=False)  # warm-up: imports and opens the video decoder once
        timed("check", lambda: check_dataset(src, progress=False))
        timed("check --full", lambda: check_dataset(src, full=True, progress=False))
        timed("merge (x2)", lambda: merge_datasets([src, src], work / "merged", progress=False), 2 * frames)
        timed("split 80/20", lambda: split_dataset(src, [work / "a", work / "b"], fractions=[0.8, 0.2], progress=False))
        timed("delete-episodes (1)", lambda: delete_episodes(src, "0", dst=work / "d", progress=False))
        timed("recompute-stats", lambda: recompute_stats(src, progress=False))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
