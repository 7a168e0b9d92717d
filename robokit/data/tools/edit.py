"""Split a dataset into several, or delete episodes from one.

Both write new datasets through `DatasetAssembler` (episodes renumbered from 0, frame indices and
tasks remapped, videos remuxed); the results are always in the v3.0 layout. `delete_episodes` without a destination edits in place: the new
dataset is built beside the old one and swapped in by renaming, so a crash leaves the old one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robokit.data.meta import DatasetMeta
from robokit.data.tools.assemble import DatasetAssembler

logger = logging.getLogger(__name__)

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_episodes(spec: str | Sequence[int]) -> list[int]:
    """"0-4,7,9-10" -> [0, 1, 2, 3, 4, 7, 9, 10] (ranges inclusive); a list of ints passes through."""
    if not isinstance(spec, str):
        return [int(e) for e in spec]
    out: list[int] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"episode list {spec!r}: {part.strip()!r} is not an index or a range like 3-7")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"episode list {spec!r}: range {part.strip()!r} ends before it starts")
        out.extend(range(lo, hi + 1))
    if not out:
        raise ValueError(f"episode list {spec!r} names no episode")
    return out


def _check_known(meta: DatasetMeta, episodes: Sequence[int], what: str) -> None:
    known = set(meta.episodes.column("episode_index").tolist())
    unknown = sorted(set(episodes) - known)
    if unknown:
        raise ValueError(f"{what}: episodes {unknown[:10]} are not in {meta.root} (it has episodes 0..{len(known) - 1})")


def split_by_fractions(num_episodes: int, fractions: Sequence[float], shuffle: bool = False, seed: int = 0) -> list[list[int]]:
    """Episode lists for `fractions` of `num_episodes` (in order, or shuffled with `seed`); each gets >= 1."""
    fractions = [float(f) for f in fractions]
    if any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise ValueError(f"fractions must be > 0 and sum to at most 1, got {fractions}")
    if len(fractions) > num_episodes:
        raise ValueError(f"cannot split {num_episodes} episodes into {len(fractions)} non-empty datasets")
    order = np.arange(num_episodes)
    if shuffle:
        order = np.random.default_rng(seed).permutation(num_episodes)
    counts = [max(1, int(round(f * num_episodes))) for f in fractions]
    if abs(sum(fractions) - 1) < 1e-9:  # everything is used: the last split takes the rounding rest
        counts[-1] = max(1, num_episodes - sum(counts[:-1]))
    while sum(counts) > num_episodes:
        counts[int(np.argmax(counts))] -= 1
    bounds = np.concatenate([[0], np.cumsum(counts)])
    parts = [sorted(order[bounds[i]:bounds[i + 1]].tolist()) for i in range(len(counts))]
    return parts


def split_dataset(
    src: str | Path,
    dsts: Sequence[str | Path],
    episodes: Sequence[str | Sequence[int]] | None = None,
    fractions: Sequence[float] | None = None,
    shuffle: bool = False,
    seed: int = 0,
    video_backend: str | None = None,
    progress: bool = True,
) -> list[DatasetMeta]:
    """Write one new dataset per destination, from explicit episode lists or from fractions."""
    from robokit.progress import progress as progress_bar

    meta = DatasetMeta.load(src)
    if (episodes is None) == (fractions is None):
        raise ValueError("split: give either episode lists or fractions (one per destination)")
    if episodes is not None:
        parts = [parse_episodes(e) for e in episodes]
    else:
        parts = [[int(meta.episodes.column("episode_index")[i]) for i in p]
                 for p in split_by_fractions(meta.total_episodes, fractions, shuffle, seed)]
    if len(parts) != len(dsts):
        raise ValueError(f"split: {len(dsts)} destinations but {len(parts)} episode lists / fractions")
    seen: dict[int, int] = {}
    for i, part in enumerate(parts):
        _check_known(meta, part, f"split #{i}")
        for ep in part:
            if ep in seen:
                raise ValueError(f"split: episode {ep} is in split #{seen[ep]} and split #{i}; splits must not overlap")
            seen[ep] = i
    results = []
    for dst, part in zip(dsts, parts):
        with DatasetAssembler(dst, meta, video_backend=video_backend) as out:
            for ep in progress_bar(part, desc=f"split -> {Path(dst).name}", unit="episode", disable=not progress):
                out.add_episode(meta, ep)
            results.append(out.commit())
        logger.info("split: %s <- %d episodes of %s", dst, len(part), meta.root)
    return results


def delete_episodes(
    src: str | Path,
    episodes: str | Sequence[int],
    dst: str | Path | None = None,
    video_backend: str | None = None,
    progress: bool = True,
) -> DatasetMeta:
    """A dataset without `episodes`: written to `dst`, or replacing `src` when `dst` is None."""
    from robokit.progress import progress as progress_bar

    meta = DatasetMeta.load(src)
    drop = set(parse_episodes(episodes))
    _check_known(meta, sorted(drop), "delete-episodes")
    keep = [int(e) for e in meta.episodes.column("episode_index").tolist() if int(e) not in drop]
    if not keep:
        raise ValueError(f"delete-episodes: deleting {len(drop)} episodes would leave {meta.root} empty")
    in_place = dst is None or Path(dst).resolve() == meta.root.resolve()
    target = meta.root if in_place else Path(dst)
    with DatasetAssembler(target, meta, replace=in_place, video_backend=video_backend) as out:
        for ep in progress_bar(keep, desc="delete-episodes", unit="episode", disable=not progress):
            out.add_episode(meta, ep)
        result = out.commit()
    logger.info("deleted episodes %s of %s: %d episodes left, written to %s", sorted(drop), meta.root, len(keep), target)
    return result
