"""DataLoader samples/s, the shapes of issue 2's baseline table, side by side with LeRobot 0.4.4.

    .venv/bin/python benchmarks/bench_loading.py [--samples 480] [--rounds 3] [--root DIR] [--backend pyav]
    .venv/bin/python benchmarks/bench_loading.py --no-lerobot --uint8 --cache-size 96 128

A dataset of 10 episodes x 150 frames (two smooth synthetic 480x640 AV1 cameras, 14-dim state and
action) is recorded once (or reused with --root), then read through a shuffled DataLoader (batch 8)
with 0 and 2 workers for: no window, an ACT window (100 future actions) and a Diffusion window
(2 frames per camera and of state, 16 actions). Each round measures robokit and then LeRobot 0.4.4
(benchmarks/lerobot_loading.py in the reference venv, --lerobot-python; the order alternates between
rounds) on the same dataset folder; figures are medians over the rounds, with the per-round ratios.
Then, robokit only, the same with the decoded-frame cache (--skip-cache to leave it out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from robokit.data import RobotDataset
from robokit.data.synthetic import SyntheticEpisode, synthetic_features

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import (
    DEFAULT_LEROBOT_PYTHON,
    host_line,
    lerobot_python,
    loader_rate,
    loading_windows,
    run_child,
    summary,
)

FPS = 30
CAMERAS = ("observation.images.front", "observation.images.wrist")


def windows() -> dict[str, dict | None]:
    return loading_windows(FPS, CAMERAS)


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
    return loader_rate(ds, workers, samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved robokit / LeRobot rounds (median over them)")
    parser.add_argument("--root", type=Path, default=None, help="reuse (or create) the benchmark dataset here")
    parser.add_argument("--backend", default=None, help="video backend: torchcodec or pyav (default: automatic)")
    parser.add_argument("--skip-cache", action="store_true")
    parser.add_argument("--cache-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="resize frames to H x W in the frame cache (the policy's input size)")
    parser.add_argument("--skip-video", action="store_true", help="only the frame-cache mode")
    parser.add_argument("--uint8", action="store_true", help="return camera frames as uint8 (convert on the GPU)")
    parser.add_argument("--lerobot-python", default=None,
                        help="interpreter of the reference LeRobot 0.4.4 venv, built by ../shared/tools/lerobot-reference/"
                             f"make-venv (default: {DEFAULT_LEROBOT_PYTHON}; without it, robokit only)")
    parser.add_argument("--no-lerobot", action="store_true", help="robokit only")
    args = parser.parse_args()
    lerobot = lerobot_python(args.lerobot_python, wanted=not (args.no_lerobot or args.skip_video))
    print(host_line(), flush=True)
    root = args.root or Path(tempfile.gettempdir()) / "robokit-bench-loading"
    if not (root / "meta/info.json").exists():
        print(f"recording the benchmark dataset into {root} ...")
        build(root)
    from robokit.data.video_decode import default_backend

    print(f"video backend: {args.backend or default_backend()}; torch threads {torch.get_num_threads()}; "
          f"camera frames as {'uint8' if args.uint8 else 'float32'}", flush=True)
    cases = [f"{name}/{workers}" for name in windows() for workers in (0, 2)]
    if not args.skip_video:
        ours, theirs = [], []
        for run in range(args.rounds):
            sides = ["robokit", "lerobot"] if lerobot else ["robokit"]
            for side in sides if run % 2 == 0 else sides[::-1]:  # the order alternates between rounds
                if side == "lerobot":
                    cmd = [lerobot, str(Path(__file__).with_name("lerobot_loading.py")), "--root", str(root),
                           "--samples", str(args.samples)]
                    theirs.append(run_child(cmd, f"round {run + 1} LeRobot"))
                    continue
                rates = {}
                for name, delta in windows().items():
                    ds = RobotDataset(root, delta_timestamps=delta, video_backend=args.backend, return_uint8=args.uint8)
                    for workers in (0, 2):
                        rates[f"{name}/{workers}"] = measure(ds, workers, args.samples)
                        print(f"  [round {run + 1} robokit] window={name:9s} workers={workers}: "
                              f"{rates[f'{name}/{workers}']:7.1f} samples/s", flush=True)
                ours.append(rates)
        print(f"\nvideo, samples/s, median over {args.rounds} rounds (range):")
        for case in cases:
            print(summary(f"window/workers {case}", case, ours, theirs, "samples/s", higher_is_better=True))
    cache = tuple(args.cache_size) if args.cache_size else True
    if not args.skip_cache:
        for name, delta in windows().items():
            ds = RobotDataset(root, delta_timestamps=delta, video_backend=args.backend, frame_cache=cache,
                              return_uint8=args.uint8)
            for workers in (0, 2):
                rates = [measure(ds, workers, args.samples) for _ in range(args.rounds)]
                print(f"frame cache window={name:9s} workers={workers}: {statistics.median(rates):7.1f} samples/s "
                      f"(runs: {', '.join(f'{r:.0f}' for r in rates)})")
    print(host_line())


if __name__ == "__main__":
    main()
