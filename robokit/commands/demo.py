"""`robokit demo`: the embedded default job.

    robokit demo [OPTIONS]           the whole learning loop: expert demos in simulation -> train a policy
                                     for a few minutes -> evaluate -> report (robokit.training.quickstart)
    robokit demo dataset [OPTIONS]   record a synthetic dataset, check it and load it for training
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    out: Path | None = None
    """Folder for the recorded dataset (default: a fresh temporary folder, removed at the end)."""
    episodes: int = 3
    """Number of episodes to record."""
    frames: int = 60
    """Frames per episode."""
    fps: int = 30
    """Recording rate (frames per second)."""
    height: int = 96
    """Camera image height in pixels."""
    width: int = 128
    """Camera image width in pixels."""
    codec: str = "av1"
    """Video codec: av1, h264 or hevc."""
    workers: int = 2
    """DataLoader worker processes."""
    batch_size: int = 8
    """DataLoader batch size."""
    seed: int = 0
    """Seed of the synthetic episodes."""


def run(cfg: DemoConfig) -> dict:
    import torch
    from robokit.progress import progress as progress_bar

    from robokit.data import RobotDataset
    from robokit.data.synthetic import SyntheticEpisode, synthetic_features
    from robokit.data.tools.check import check_dataset

    keep = cfg.out is not None
    root = Path(cfg.out) if keep else Path(tempfile.mkdtemp(prefix="robokit-demo-")) / "dataset"
    features = synthetic_features(height=cfg.height, width=cfg.width)
    tasks = ["pick up the red cube", "place the cube in the bin"]

    # 1. Record.
    start = time.perf_counter()
    ds = RobotDataset.create(root, fps=cfg.fps, features=features, robot_type="synthetic_arm", video_codec=cfg.codec)
    with progress_bar(total=cfg.episodes * cfg.frames, desc="recording", unit="frame") as bar:
        for ep in range(cfg.episodes):
            episode = SyntheticEpisode(features, seed=cfg.seed + ep)
            for i in range(cfg.frames):
                ds.add_frame(episode.frame(i, cfg.fps, task=tasks[ep % len(tasks)]))
                bar.update()
            ds.save_episode()
    ds.finalize()
    record_s = time.perf_counter() - start
    print(f"recorded {cfg.episodes} episodes x {cfg.frames} frames (2 cameras {cfg.height}x{cfg.width}, {cfg.codec}) "
          f"in {record_s:.1f} s -> {root}")

    # 2. Inspect.
    report = check_dataset(root)
    print(report.render())
    if not report.ok:
        raise SystemExit(1)

    # 3. Load for training: an ACT-style window (state now, 10 future actions).
    delta = {"action": [i / cfg.fps for i in range(10)], "observation.state": [0.0]}
    ds = RobotDataset(root, delta_timestamps=delta)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    start = time.perf_counter()
    batches = 0
    for batch in progress_bar(loader, desc="loading", unit="batch"):
        batches += 1
    load_s = time.perf_counter() - start
    shapes = {k: tuple(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    print(f"loaded {len(ds)} samples in {batches} batches with {cfg.workers} workers in {load_s:.1f} s "
          f"({len(ds) / load_s:.0f} samples/s); last batch:")
    for key, shape in shapes.items():
        print(f"  {key:32s} {shape}")
    summary = {"root": str(root), "episodes": ds.num_episodes, "frames": len(ds), "record_s": record_s, "load_s": load_s}
    if not keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    return summary


def main(argv: list[str]) -> int:
    from robokit.cli import parse

    if argv and argv[0] == "dataset":
        cfg = parse(DemoConfig, argv[1:], prog="robokit demo dataset",
                    description="Record a synthetic dataset (2 cameras, AV1), check its layout and load it for training.")
        run(cfg)
        print("demo dataset: done")
        return 0
    from robokit.training.quickstart import QuickstartConfig, run_quickstart

    qcfg = parse(QuickstartConfig, argv, prog="robokit demo", description=__doc__)
    figures = run_quickstart(qcfg)
    print(f"demo: done; report in {qcfg.out / 'report.md'} (success {figures['eval']['pc_success']:.0f}%)")
    return 0
