"""Convert a dataset in the older v2.0 / v2.1 layout (one file per episode) to v3.0 (shared files).

Data rows are concatenated into v3.0 parquet files; each episode's mp4 is remuxed (packets
copied, no re-encoding) onto the end of the camera's shared file, and its `from_timestamp` /
`to_timestamp` recorded; tasks go to tasks.parquet; stats get their quantiles (tabular features
from the rows, cameras from decoded frames when the source lacks them). The result is built in a
staging folder and renamed to DST when complete.
"""

from __future__ import annotations

import logging
from pathlib import Path

from robokit.data.meta import CODEBASE_VERSION, LEGACY_VERSIONS, DatasetMeta
from robokit.data.tools.assemble import DatasetAssembler

logger = logging.getLogger(__name__)


def convert_dataset(
    src: str | Path,
    dst: str | Path,
    data_files_size_in_mb: float | None = None,
    video_files_size_in_mb: float | None = None,
    video_backend: str | None = None,
    progress: bool = True,
) -> DatasetMeta:
    """Write the v3.0 version of the v2.x dataset `src` to the new folder `dst`; returns its metadata."""
    from robokit.progress import progress as progress_bar

    source = DatasetMeta.load(src)
    if source.version not in LEGACY_VERSIONS:
        raise ValueError(
            f"{source.root} is already in the {source.version} layout; convert reads {' / '.join(LEGACY_VERSIONS)}"
        )
    with DatasetAssembler(
        dst,
        source,
        data_files_size_in_mb=data_files_size_in_mb,
        video_files_size_in_mb=video_files_size_in_mb,
        video_backend=video_backend,
    ) as out:
        for ep in progress_bar(source.episodes.column("episode_index").tolist(), desc="convert", unit="episode", disable=not progress):
            out.add_episode(source, int(ep))
        meta = out.commit()
    logger.info(
        "converted %s (%s) -> %s (%s): %d episodes, %d frames",
        source.root, source.version, meta.root, CODEBASE_VERSION, meta.total_episodes, meta.total_frames,
    )
    return meta
