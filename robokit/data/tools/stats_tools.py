"""Per-episode stats from the data itself: tabular features exactly, cameras from decoded frames.

`recompute_stats(root)` rewrites the stats columns of meta/episodes and meta/stats.json of a v3.0
dataset in place (each file atomically), e.g. after editing parquet by hand or to fill in
quantiles that an older writer did not store.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from robokit.data import atomic
from robokit.data.meta import EPISODES_PATH, DatasetError, DatasetMeta, read_parquet
from robokit.data.stats import STAT_KEYS, Stats, aggregate_stats, compute_episode_stats, image_sample_indices

logger = logging.getLogger(__name__)


def column_values(column, spec: dict) -> np.ndarray:
    """A parquet column of a numeric feature -> (N, *shape) numpy array of the declared dtype."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    values = column
    while pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = values.flatten()
    array = values.to_numpy(zero_copy_only=False).astype(np.dtype(spec["dtype"]), copy=False)
    return array.reshape(len(column), *[int(s) for s in spec["shape"]])


def tabular_episode_stats(table, features: dict) -> Stats:
    """Stats of every numeric feature present in one episode's rows (exact; no sampling)."""
    episode = {
        key: column_values(table.column(key), spec)
        for key, spec in features.items()
        if spec["dtype"] not in ("image", "video", "string") and key in table.column_names
    }
    return compute_episode_stats(episode, {k: features[k] for k in episode})


def camera_stats_complete(stats: dict | None, spec: dict) -> bool:
    """True when a camera's stats have every key, each shaped (C, 1, 1) (count: (1,))."""
    if not stats or any(k not in stats for k in STAT_KEYS):
        return False
    channels = int(spec["shape"][-1])
    return all(np.asarray(stats[k]).shape == ((1,) if k == "count" else (channels, 1, 1)) for k in STAT_KEYS)


def episode_camera_frames(meta: DatasetMeta, episode_index: int, key: str, positions: np.ndarray,
                          backend: str | None = None, tolerance_s: float = 1e-4) -> np.ndarray:
    """Frames `positions` (0-based in the episode) of camera `key` -> (N, H, W, C) uint8."""
    spec = meta.features[key]
    if spec["dtype"] == "video":
        from robokit.data.video_decode import decode_frames

        start = meta.video_from_timestamp(episode_index, key)
        times = (start + np.asarray(positions, dtype=np.float64) / meta.fps).tolist()
        frames = decode_frames(meta.video_file(episode_index, key), times, tolerance_s, backend=backend)
        return frames.permute(0, 2, 3, 1).numpy()
    from robokit.data.images import decode_png

    table = read_parquet(meta.data_file(episode_index), columns=["episode_index", key])
    rows = np.flatnonzero(table.column("episode_index").to_numpy() == episode_index)
    column = table.column(key).combine_chunks()
    blobs = column.field("bytes") if hasattr(column, "field") else column
    return np.stack([decode_png(blobs[int(rows[p])].as_py(), f"{key} of episode {episode_index}") for p in positions])


def episode_camera_stats(meta: DatasetMeta, episode_index: int, key: str, backend: str | None = None) -> dict:
    """Stats of one camera over one episode from decoded frames at LeRobot's sample positions."""
    length = int(meta.episodes.column("length")[meta.episodes.row_of(episode_index)])
    positions = image_sample_indices(length)
    frames = episode_camera_frames(meta, episode_index, key, positions, backend=backend)
    stats = compute_episode_stats({key: frames}, {key: meta.features[key]})[key]
    stats["count"] = np.array([length], dtype=np.int64)  # the episode's frames, as the recorder counts them
    return stats


def recompute_stats(root: str | Path, cameras: bool = True, backend: str | None = None, progress: bool = True) -> DatasetMeta:
    """Recompute every episode's stats and meta/stats.json of the v3.0 dataset at `root`, in place.

    Tabular features always come from the parquet rows. Cameras are decoded when `cameras` is true;
    otherwise their stored stats are kept (and decoded only where missing or incomplete).
    """
    import pyarrow as pa
    from robokit.progress import progress as progress_bar

    from robokit.data.legacy import stats_column
    from robokit.data.stats import unflatten_stats
    from robokit.data.tools.assemble import SourceRows

    meta = DatasetMeta.load(root)
    if meta.version != "v3.0":
        raise DatasetError(f"{meta.root} is in the {meta.version} layout; convert it first: robokit dataset convert SRC DST")
    if not len(meta.episodes):
        raise DatasetError(f"{meta.root} has no episodes")
    rows = SourceRows()
    all_stats: list[Stats] = []
    for row in progress_bar(list(meta.episodes), desc="recompute-stats", unit="episode", disable=not progress):
        ep = int(row["episode_index"])
        stats = tabular_episode_stats(rows.episode(meta, ep), meta.features)
        stored = unflatten_stats(row)
        for key in meta.camera_keys:
            if not cameras and camera_stats_complete(stored.get(key), meta.features[key]):
                stats[key] = stored[key]
            else:
                stats[key] = episode_camera_stats(meta, ep, key, backend=backend)
        all_stats.append(stats)

    from robokit.data.stats import flatten_stats

    table = meta.episodes.table
    flat = [flatten_stats(s) for s in all_stats]
    names = list(dict.fromkeys(k for f in flat for k in f))
    keep = [c for c in table.column_names if not c.startswith("stats/") and not c.startswith("meta/episodes/")]
    columns = {c: table.column(c) for c in keep}
    columns |= {name: stats_column([f.get(name) for f in flat]) for name in names}
    for c in ("meta/episodes/chunk_index", "meta/episodes/file_index"):
        columns[c] = table.column(c)
    new = pa.table(columns)
    chunks = new.column("meta/episodes/chunk_index").to_numpy()
    files = new.column("meta/episodes/file_index").to_numpy()
    for chunk, file in sorted(set(zip(chunks.tolist(), files.tolist()))):
        mask = (chunks == chunk) & (files == file)
        atomic.write_parquet(meta.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file), new.filter(pa.array(mask)))
    meta.stats = aggregate_stats(all_stats)
    meta.write_stats()
    logger.info("recomputed the stats of %d episodes of %s", len(all_stats), meta.root)
    return DatasetMeta.load(meta.root)
