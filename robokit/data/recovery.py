"""Bring a dataset folder back to its last committed episode after a kill.

meta/episodes is the commit record (see writer.py). Anything an interrupted commit left beyond
it is removed: temp files, the recording folder, data rows and whole files past the last
committed episode; info.json and stats.json are rebuilt from meta/episodes.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from robokit.data import atomic
from robokit.data.meta import INFO_PATH, STATS_PATH, DatasetError, DatasetMeta, episodes_files, read_json, read_parquet
from robokit.data.writer import TMP_DIR

DATASET_ENTRIES = {"meta", "data", "videos", TMP_DIR}  # what a dataset writer creates at the top level

logger = logging.getLogger(__name__)


def repair(root: Path) -> list[str]:
    """Repair `root` in place; returns what was done (empty when the dataset was clean)."""
    import pyarrow.compute as pc

    root = Path(root)
    actions: list[str] = []
    if (root / TMP_DIR).exists():
        shutil.rmtree(root / TMP_DIR)
        actions.append(f"removed the unsaved episode in {TMP_DIR}/")
    removed = atomic.remove_stale_temp_files(root)
    if removed:
        actions.append(f"removed {removed} temporary file(s) of an interrupted write")
    meta = DatasetMeta.load(root)
    if meta.version != "v3.0":
        return actions
    eps = meta.episodes
    total_frames = int(eps.column("dataset_to_index")[-1]) if len(eps) else 0

    # Data files: rows past the last committed frame, files past the last referenced one.
    referenced = {meta.data_file(int(e)) for e in eps.column("episode_index")} if len(eps) else set()
    for path in sorted((root / "data").glob("chunk-*/file-*.parquet")):
        if path not in referenced:
            path.unlink()
            actions.append(f"removed {path.relative_to(root)} (no committed episode in it)")
            continue
        table = read_parquet(path)
        keep = table.filter(pc.less(table.column("index"), total_frames))
        if keep.num_rows != table.num_rows:
            atomic.write_parquet(path, keep)
            actions.append(f"dropped {table.num_rows - keep.num_rows} uncommitted rows from {path.relative_to(root)}")
    for key in meta.video_keys:
        referenced = {meta.video_file(int(e), key) for e in eps.column("episode_index")} if len(eps) else set()
        for path in sorted((root / "videos" / key).glob("chunk-*/file-*.mp4")):
            if path not in referenced:
                path.unlink()
                actions.append(f"removed {path.relative_to(root)} (no committed episode in it)")

    info = meta.info
    if (info.get("total_episodes"), info.get("total_frames")) != (meta.total_episodes, meta.total_frames):
        actions.append(
            f"info.json said {info.get('total_episodes')} episodes / {info.get('total_frames')} frames; "
            f"meta/episodes has {meta.total_episodes} / {meta.total_frames}"
        )
        rebuild_stats(meta)
        meta.write_info()
    elif len(eps) and not (root / STATS_PATH).is_file():
        actions.append("meta/stats.json was missing; rebuilt from meta/episodes")
        rebuild_stats(meta)
    for line in actions:
        logger.info("repair %s: %s", root, line)
    return actions


def clear_uncommitted(root: Path) -> bool:
    """Empty `root` if it holds only a dataset that never committed an episode; returns whether it did.

    Such a folder (a crash or a lost device before the first `save_episode`, or `create` +
    `finalize` with nothing saved) has no row in meta/episodes/ and only the entries a dataset
    writer makes; nothing in it is a recorded frame. Anything else is left alone.
    """
    root = Path(root)
    entries = {p.name for p in root.iterdir()}
    if not entries <= DATASET_ENTRIES or episodes_files(root):
        return False
    info_path = root / INFO_PATH
    if info_path.exists():  # info.json counts episodes only after they are committed: it must say 0
        try:
            info = read_json(info_path)
        except DatasetError:
            return False
        if not isinstance(info, dict) or info.get("total_episodes") != 0:
            return False
    for name in entries:
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    logger.info("%s held a dataset with no committed episode; it was cleared to start a new one", root)
    return True


def rebuild_stats(meta: DatasetMeta) -> None:
    """Recompute meta/stats.json by merging the per-episode stats stored in meta/episodes."""
    from robokit.data.stats import aggregate_stats, unflatten_stats

    if not len(meta.episodes):
        meta.stats = {}
    else:
        meta.stats = aggregate_stats([unflatten_stats(row) for row in meta.episodes])
    meta.write_stats()

