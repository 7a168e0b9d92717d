"""`robokit dataset <tool>`: inspect, validate, convert and edit episode datasets.

Every tool that writes builds the new dataset in a staging folder beside the destination and
renames it into place when complete, so an interrupted run never leaves a half-written dataset.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

logger = logging.getLogger(__name__)

Positional = tyro.conf.Positional


@dataclass
class Info:
    """Show a dataset's features, episodes, frames, fps, tasks, robot type and size on disk."""

    root: Positional[str]
    """Dataset folder, or a hub repo id "user/name" (only its metadata is downloaded)."""
    json: bool = False
    """Print the information as JSON instead of a table."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when ROOT is a repo id."""


@dataclass
class Check:
    """Validate a dataset: counts, index continuity, timestamps, task indices, video frames, stats.

    Prints a report naming every fault and exits with status 1 if there is any."""

    root: Positional[Path]
    """Dataset folder (v3.0 or v2.x)."""
    full: bool = False
    """Decode every frame of every camera and name the frames that do not (default: the first and last frame of each episode)."""
    video_backend: str | None = None
    """Video decoder: torchcodec or pyav (default: the fastest that loads)."""
    json: bool = False
    """Print the report as JSON."""


@dataclass
class Convert:
    """Convert a dataset in the older v2.0/v2.1 layout to v3.0 (videos remuxed, not re-encoded)."""

    src: Positional[Path]
    """The v2.x dataset folder."""
    dst: Positional[Path]
    """The new v3.0 dataset folder (must not exist)."""
    data_files_size_in_mb: float | None = None
    """Size limit of a data parquet file (default: 100)."""
    video_files_size_in_mb: float | None = None
    """Size limit of a video file (default: 200)."""
    check: bool = True
    """Run `check` on the result and fail if it finds a fault."""


@dataclass
class Merge:
    """Merge datasets with the same features and fps into a new one (tasks and indices renumbered)."""

    sources: Positional[list[Path]]
    """Two or more dataset folders, merged in this order."""
    out: Path
    """The new dataset folder (must not exist)."""
    data_files_size_in_mb: float | None = None
    """Size limit of a data parquet file (default: the first source's)."""
    video_files_size_in_mb: float | None = None
    """Size limit of a video file (default: the first source's)."""


@dataclass
class Split:
    """Split a dataset into several new ones, by episode lists or by fractions."""

    src: Positional[Path]
    """The dataset folder to split (left unchanged)."""
    out: list[Path] = field(default_factory=list)
    """One new dataset folder per split, e.g. --out train val."""
    episodes: list[str] | None = None
    """One episode list per split, e.g. --episodes 0-39 40-49 (ranges inclusive, commas allowed)."""
    fractions: list[float] | None = None
    """One fraction of the episodes per split, e.g. --fractions 0.8 0.2."""
    shuffle: bool = False
    """With --fractions: assign episodes at random (seeded) instead of in order."""
    seed: int = 0
    """Seed for --shuffle."""


@dataclass
class DeleteEpisodes:
    """Remove episodes from a dataset; the rest are renumbered from 0."""

    root: Positional[Path]
    """The dataset folder."""
    episodes: str
    """Episodes to delete, e.g. "3,7-9" (ranges inclusive)."""
    out: Path | None = None
    """Write the result to this new folder; default: replace ROOT in place (atomically, by renaming)."""


@dataclass
class RecomputeStats:
    """Recompute per-episode stats and meta/stats.json from the data (tabular exactly, cameras from decoded frames)."""

    root: Positional[Path]
    """The v3.0 dataset folder (edited in place, file by file atomically)."""
    skip_cameras: bool = False
    """Keep the stored camera stats where complete instead of decoding frames."""
    video_backend: str | None = None
    """Video decoder: torchcodec or pyav (default: the fastest that loads)."""


@dataclass
class Cache:
    """Build the decoded-frame cache beside a dataset (memory-mapped uint8 frames) for fast training."""

    root: Positional[Path]
    """The dataset folder."""
    height: int | None = None
    """Resize frames to this height (with --width); default: keep the recorded size."""
    width: int | None = None
    """Resize frames to this width (with --height)."""


SUBCOMMANDS = {
    "info": Info,
    "check": Check,
    "convert": Convert,
    "merge": Merge,
    "split": Split,
    "delete-episodes": DeleteEpisodes,
    "recompute-stats": RecomputeStats,
    "cache": Cache,
}


def main(argv: list[str]) -> int:
    from robokit.cli import parse_subcommands, suggest

    if argv and not argv[0].startswith("-") and argv[0] not in SUBCOMMANDS:
        print(f"robokit dataset: unknown tool {argv[0]!r}.{suggest(argv[0], SUBCOMMANDS)} "
              f"Tools: {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    cfg = parse_subcommands(SUBCOMMANDS, argv, prog="robokit dataset", description=__doc__.splitlines()[0])
    return int(run(cfg) or 0)


def run(cfg) -> int:
    """Run one tool from its config; returns the exit status."""
    if isinstance(cfg, Info):
        from robokit.data.tools.info import dataset_info, format_info

        info = dataset_info(cfg.root, revision=cfg.revision)
        print(json.dumps(info, indent=2) if cfg.json else format_info(info))
        return 0
    if isinstance(cfg, Check):
        return _check(cfg.root, cfg.full, cfg.video_backend, cfg.json)
    if isinstance(cfg, Convert):
        from robokit.data.tools.convert import convert_dataset

        meta = convert_dataset(cfg.src, cfg.dst, cfg.data_files_size_in_mb, cfg.video_files_size_in_mb)
        print(f"converted {cfg.src} -> {meta.root}: {meta.total_episodes} episodes, {meta.total_frames} frames (v3.0)")
        return _check(meta.root, False, None, False) if cfg.check else 0
    if isinstance(cfg, Merge):
        from robokit.data.tools.merge import merge_datasets

        meta = merge_datasets(cfg.sources, cfg.out, cfg.data_files_size_in_mb, cfg.video_files_size_in_mb)
        print(f"merged {len(cfg.sources)} datasets -> {meta.root}: {meta.total_episodes} episodes, "
              f"{meta.total_frames} frames, {meta.total_tasks} tasks")
        return 0
    if isinstance(cfg, Split):
        from robokit.data.tools.edit import split_dataset

        if not cfg.out:
            raise SystemExit("robokit dataset split: give the new folders with --out A B ...")
        metas = split_dataset(cfg.src, cfg.out, episodes=cfg.episodes, fractions=cfg.fractions,
                              shuffle=cfg.shuffle, seed=cfg.seed)
        for meta in metas:
            print(f"split -> {meta.root}: {meta.total_episodes} episodes, {meta.total_frames} frames")
        return 0
    if isinstance(cfg, DeleteEpisodes):
        from robokit.data.tools.edit import delete_episodes

        meta = delete_episodes(cfg.root, cfg.episodes, dst=cfg.out)
        print(f"deleted episodes {cfg.episodes}: {meta.root} now has {meta.total_episodes} episodes, {meta.total_frames} frames")
        return 0
    if isinstance(cfg, RecomputeStats):
        from robokit.data.tools.stats_tools import recompute_stats

        meta = recompute_stats(cfg.root, cameras=not cfg.skip_cameras, backend=cfg.video_backend)
        print(f"recomputed the stats of {meta.total_episodes} episodes of {meta.root} ({len(meta.stats)} features)")
        return 0
    if isinstance(cfg, Cache):
        from robokit.data import RobotDataset

        if (cfg.height is None) != (cfg.width is None):
            raise SystemExit("robokit dataset cache: give both --height and --width, or neither")
        size = (cfg.height, cfg.width) if cfg.height is not None else True
        ds = RobotDataset(cfg.root, frame_cache=size)
        print(f"frame cache ready for {ds.root}: {len(ds)} frames x {len(ds.camera_keys)} camera(s)")
        return 0
    raise TypeError(f"unknown dataset tool config {type(cfg).__name__}")


def _check(root: Path, full: bool, backend: str | None, as_json: bool) -> int:
    from robokit.data.tools.check import check_dataset

    report = check_dataset(root, full=full, video_backend=backend)
    if as_json:
        print(json.dumps({"root": str(report.root), "ok": report.ok, "faults": report.faults,
                          "warnings": report.warnings, "passed": report.passed, "summary": report.summary}, indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1
