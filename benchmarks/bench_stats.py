"""Speed of episode stats (run at save_episode) and of the image augmentations (run per sample).

    .venv/bin/python benchmarks/bench_stats.py [--frames 150] [--repeats 7]

Prints the median wall and CPU time of compute_episode_stats for one episode of two 480x640
cameras + 14-dim state/action (three ways of handing the cameras over), of pixel_counts per frame,
and of ImageTransforms per image.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from robokit.data.stats import PixelCounts, compute_episode_stats, pixel_counts
from robokit.data.transforms import ImageTransforms, ImageTransformsConfig

HEIGHT, WIDTH = 480, 640


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median (wall, cpu) milliseconds of fn()."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def smooth_frames(n: int, shift: int) -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([xx * 0.3, yy * 0.4, (xx + yy) * 0.2], -1) % 256
    return np.stack([np.roll(base, 3 * k + shift, axis=1) for k in range(n)]).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per episode")
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions (median reported)")
    args = parser.parse_args()
    n, rng = args.frames, np.random.default_rng(0)

    cams = {f"observation.images.cam{i}": smooth_frames(n, i) for i in range(2)}
    features = {k: {"dtype": "video", "shape": [HEIGHT, WIDTH, 3]} for k in cams}
    features |= {k: {"dtype": "float32", "shape": [14]} for k in ("observation.state", "action")}
    features |= {
        k: {"dtype": "int64", "shape": [1]} for k in ("frame_index", "episode_index", "index", "task_index")
    }
    features["timestamp"] = {"dtype": "float32", "shape": [1]}
    tabular = {k: rng.normal(size=(n, 14)).astype(np.float32) for k in ("observation.state", "action")}
    tabular |= {k: np.arange(n) for k in ("frame_index", "episode_index", "index", "task_index")}
    tabular["timestamp"] = np.arange(n) / 30

    print(f"compute_episode_stats, {n} frames, 2 cameras {HEIGHT}x{WIDTH} + 14-dim state/action (median ms):")
    w, c = timed(lambda: compute_episode_stats(tabular, features), args.repeats)
    print(f"  tabular features only                     wall {w:7.1f}  cpu {c:7.1f}")
    w, c = timed(lambda: compute_episode_stats(tabular | cams, features), args.repeats)
    print(f"  full frames (N, H, W, C)                  wall {w:7.1f}  cpu {c:7.1f}")
    counts = {k: PixelCounts(np.stack([pixel_counts(f) for f in v])) for k, v in cams.items()}
    w, c = timed(lambda: compute_episode_stats(tabular | counts, features), args.repeats)
    print(f"  PixelCounts kept while recording          wall {w:7.1f}  cpu {c:7.1f}")
    strided = {k: np.ascontiguousarray(v[::5, ::4, ::4]) for k, v in cams.items()}
    w, c = timed(lambda: compute_episode_stats(tabular | strided, features, num_frames=n), args.repeats)
    print(f"  every 5th frame, strided by 4             wall {w:7.1f}  cpu {c:7.1f}")
    frame = cams["observation.images.cam0"][0]
    w, c = timed(lambda: [pixel_counts(frame) for _ in range(100)], args.repeats)
    print(f"  pixel_counts of one frame (add_frame)     wall {w / 100:7.3f}  cpu {c / 100:7.3f}")

    torch.set_num_threads(1)  # as in a DataLoader worker
    tf = ImageTransforms(ImageTransformsConfig(enable=True))
    print("ImageTransforms (3 of 6 per sample, 1 thread), median ms per image:")
    for h, w_ in ((96, 96), (HEIGHT, WIDTH)):
        image = torch.rand(3, h, w_)
        w, c = timed(lambda: augment_20(tf, image), args.repeats)  # noqa: B023 (called right here)
        print(f"  {h}x{w_:<38} wall {w / 20:7.2f}  cpu {c / 20:7.2f}")


def augment_20(tf: ImageTransforms, image: torch.Tensor) -> None:
    for seed in range(20):
        tf(image, torch.Generator().manual_seed(seed))


if __name__ == "__main__":
    main()
