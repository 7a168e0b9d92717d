"""Merge several datasets with the same features and fps into one new dataset.

Episodes keep their order (all of the first dataset, then the second, ...) and are renumbered
0..E-1; frame indices follow; tasks are merged into one list (a task string shared by two datasets
gets one task_index) and every frame's task_index is remapped. Videos are remuxed, not re-encoded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from robokit.data.meta import DatasetMeta
from robokit.data.tools.assemble import DatasetAssembler, check_compatible

logger = logging.getLogger(__name__)


def merge_datasets(
    sources: Sequence[str | Path],
    dst: str | Path,
    data_files_size_in_mb: float | None = None,
    video_files_size_in_mb: float | None = None,
    video_backend: str | None = None,
    progress: bool = True,
) -> DatasetMeta:
    """Write the episodes of every dataset in `sources` (in order) to the new folder `dst`."""
    from robokit.progress import progress as progress_bar

    if len(sources) < 2:
        raise ValueError(f"merge needs at least two datasets, got {len(sources)}: {[str(s) for s in sources]}")
    metas = [DatasetMeta.load(s) for s in sources]
    for m in metas[1:]:  # before anything is written
        check_compatible(metas[0], m)
    robot_types = {m.robot_type for m in metas}
    if len(robot_types) > 1:
        logger.warning("merging datasets of robot types %s; the result keeps %r", sorted(map(str, robot_types)), metas[0].robot_type)
    jobs = [(m, int(ep)) for m in metas for ep in m.episodes.column("episode_index").tolist()]
    with DatasetAssembler(
        dst, metas[0], data_files_size_in_mb=data_files_size_in_mb,
        video_files_size_in_mb=video_files_size_in_mb, video_backend=video_backend,
    ) as out:
        for m in metas[1:]:
            out.check_compatible(m)
        for m, ep in progress_bar(jobs, desc="merge", unit="episode", disable=not progress):
            out.add_episode(m, ep)
        meta = out.commit()
    logger.info("merged %d datasets into %s: %d episodes, %d frames, %d tasks",
                len(metas), meta.root, meta.total_episodes, meta.total_frames, meta.total_tasks)
    return meta
