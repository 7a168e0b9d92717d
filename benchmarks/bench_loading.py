"""DataLoader samples/s, the shapes of issue 2's baseline table.

    .venv/bin/python benchmarks/bench_loading.py [--samples 480] [--runs 3] [--root DIR] [--backend pyav]

A dataset of 10 episodes x 150 frames (two smooth synthetic 480x640 AV1 cameras, 14-dim state and
action) is recorded once (or reused with --root), then read through a shuffled DataLoader (batch 8)
with 0 and 2 workers for: no window, an ACT window (100 future actions) and a Diffusion window
(2 frames per camera and of state, 16 actions); then the same with the decoded-frame cache.
Each figure is the median of --runs runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from robokit.data import RobotDataset
from robokit.data.synthetic import SyntheticEpisode, synthetic_features

FPS = 30
CAMERAS = ("observation.images.front", "observation.images.wrist")


def windows() -> dict[str, dict | None]:
    act = {"action": [i / FPS for i in range(100)]}
    diffusion = {"observation.state": [-1 / FPS, 0], "action": [i / FPS for i in range(-1, 15)]}
    diffusion |= {cam: [-1 / FPS, 0] for cam in CAMERAS}
    return {"none": None, "act": act, "diffusion": diffusion}


def build(root: Path) -> None:
    features = synthetic_features(height=480, width=640, state_dim=14)
    ds = RobotDataset.create(root, fps=FPS, features=features, robot_type="bench")
    for ep in range(10):
        episode = SyntheticEpisode(features, seed=ep)
        for i in range(150):
            ds.add_frame(episode.frame(i, FPS))
        ds.save_episode()
    ds.finalize()


def measure(ds: RobotDataset, workers: int, samples: int) -> float:
    loader = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0), persistent_workers=False)
    it = iter(loader)
    next(it)  # start-up (worker fork, first decoder open) is not throughput
    start, seen = time.perf_counter(), 0
    for batch in it:
        seen += len(batch["index"])
        if seen >= samples:
            break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=480)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="reuse (or create) the benchmark dataset here")
    parser.add_argument("--backend", default=None, help="video backend: torchcodec or pyav (default: automatic)")
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument("--cache-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="resize frames to H x W in the frame cache (the policy's input size)")
    parser.add_argument("--skip-video", action="store_true", help="only the frame-cache mode")
    parser.add_argument("--uint8", action="store_true", help="return camera frames as uint8 (convert on the GPU)")
    args = parser.parse_args()
    root = args.root or Path(tempfile.gettempdir()) / "robokit-bench-loading"
    if not (root / "meta/info.json").exists():
        print(f"recording the benchmark dataset into {root} ...")
        build(root)
    from robokit.data.video_decode import default_backend

    print(f"video backend: {args.backend or default_backend()}; torch threads {torch.get_num_threads()}; "
          f"camera frames as {'uint8' if args.uint8 else 'float32'}")
    cache = tuple(args.cache_size) if args.cache_size else True
    modes = ([] if args.skip_video else [("video", False)]) + ([] if args.skip_cache else [("frame cache", cache)])
    for mode, cache in modes:
        for name, delta in windows().items():
            ds = RobotDataset(root, delta_timestamps=delta, video_backend=args.backend, frame_cache=cache,
                              return_uint8=args.uint8)
            for workers in (0, 2):
                rates = [measure(ds, workers, args.samples) for _ in range(args.runs)]
                print(f"{mode:11s} window={name:9s} workers={workers}: {statistics.median(rates):7.1f} samples/s "
                      f"(runs: {', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
