"""Build a new v3.0 dataset from episodes of existing datasets (v3.0 or v2.1): the engine of
convert, merge, split and delete-episodes.

Episodes are copied, not re-encoded: their parquet rows are renumbered (`episode_index`, `index`,
`task_index` remapped onto the new task list) and their video packets are cut out of the source
mp4 and concatenated into the new files (`video_concat`). Per-episode stats of tabular features
are recomputed from the rows (exact, and they change with renumbering); camera stats are copied
when the source has all of them, else computed from decoded frames.

Everything is written into a staging folder beside the destination (`.<name>.robokit-staging-*`)
and renamed onto the destination by `commit()`, so a killed run leaves the destination untouched
(or absent) and a staging folder, which the next tool run on that destination deletes. An in-place
edit moves the old dataset aside (`.<name>.robokit-old-*`) for the instant between two renames;
if killed right then, the next run puts it back.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from robokit.data import atomic
from robokit.data.features import arrow_schema
from robokit.data.meta import (
    DATA_PATH,
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_DATA_FILE_SIZE_MB,
    DEFAULT_VIDEO_FILE_SIZE_MB,
    EPISODES_PATH,
    VIDEO_PATH,
    DatasetError,
    DatasetMeta,
    Episodes,
    read_parquet,
)
from robokit.data.tools.video_concat import VideoConcatenator, read_segment

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".robokit-staging-"
BACKUP_PREFIX = ".robokit-old-"
META_FILE_SIZE_MB = 4.0  # rows of meta/episodes per file, by size


class _FilePos:
    def __init__(self) -> None:
        self.chunk, self.file = 0, 0

    def advance(self, chunks_size: int) -> None:
        self.file += 1
        if self.file >= chunks_size:
            self.chunk, self.file = self.chunk + 1, 0


def feature_signature(features: dict) -> dict:
    """What must agree between datasets that are merged: dtype, shape and names of each feature."""
    return {k: (v["dtype"], list(v["shape"]), v.get("names")) for k, v in features.items()}


def check_compatible(reference: DatasetMeta, source: DatasetMeta, reference_name: str | None = None) -> None:
    """Raise ValueError (one line, naming both datasets) if `source` differs from `reference` in fps or features."""
    ref = reference_name or str(reference.root)
    if source.fps != reference.fps:
        raise ValueError(
            f"{ref} has {reference.fps} fps and {source.root} has {source.fps} fps; datasets must share fps to be merged"
        )
    ours, theirs = feature_signature(reference.features), feature_signature(source.features)
    for key in sorted(set(theirs) | set(ours)):
        if theirs.get(key) != ours.get(key):
            raise ValueError(
                f"{source.root}: feature {key!r} is {theirs.get(key)} (dtype, shape, names) but {ref} "
                f"has {ours.get(key)}; datasets must have the same features"
            )


def staging_path(dst: Path) -> Path:
    return dst.parent / f".{dst.name}{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_interrupted(dst: Path) -> list[str]:
    """Undo what a killed tool left beside `dst`: restore a dataset moved aside by an in-place swap
    that did not finish, and delete staging folders of processes that no longer run."""
    actions = []
    if not dst.parent.is_dir():
        return actions
    backups = sorted(dst.parent.glob(f".{dst.name}{BACKUP_PREFIX}*"))
    if backups and not dst.exists():
        os.rename(backups[-1], dst)
        actions.append(f"restored {dst} from the interrupted in-place edit {backups[-1].name}")
        backups = backups[:-1]
    for path in backups:
        shutil.rmtree(path, ignore_errors=True)
        actions.append(f"removed {path.name} (the old copy of an in-place edit that completed)")
    for path in dst.parent.glob(f".{dst.name}{STAGING_PREFIX}*"):
        pid = path.name.rsplit(STAGING_PREFIX, 1)[1].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            actions.append(f"removed {path.name} (staging folder of a run that was interrupted)")
    for line in actions:
        logger.warning(line)
    return actions


class SourceRows:
    """The parquet rows of source episodes, reading each data file once (a small LRU of files)."""

    def __init__(self, max_files: int = 2):
        self._files: OrderedDict[Path, tuple[Any, dict[int, tuple[int, int]]]] = OrderedDict()
        self.max_files = max_files

    def episode(self, meta: DatasetMeta, episode_index: int):
        path = meta.data_file(episode_index)
        if path not in self._files:
            table = read_parquet(path)
            if "episode_index" not in table.column_names:
                raise DatasetError(f"{path} has no episode_index column")
            eps = table.column("episode_index").to_numpy()
            spans: dict[int, tuple[int, int]] = {}
            if len(eps):
                change = np.flatnonzero(np.diff(eps)) + 1
                starts = np.concatenate([[0], change])
                ends = np.concatenate([change, [len(eps)]])
                for s, e in zip(starts.tolist(), ends.tolist()):
                    ep = int(eps[s])
                    if ep in spans:
                        raise DatasetError(f"{path}: the rows of episode {ep} are not contiguous")
                    spans[ep] = (s, e)
            self._files[path] = (table, spans)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        self._files.move_to_end(path)
        table, spans = self._files[path]
        if episode_index not in spans:
            raise DatasetError(f"{path} has no rows of episode {episode_index}")
        start, end = spans[episode_index]
        return table.slice(start, end - start)


class DatasetAssembler:
    """Append episodes of source datasets to a new dataset; `commit()` makes it appear at `dst`.

    Args:
        dst: destination folder; must not exist unless `replace=True` (in-place edits).
        template: a source dataset whose fps, features and robot type the new dataset takes.
        recompute_camera_stats: decode frames for camera stats even when the source has them.
    """

    def __init__(
        self,
        dst: str | Path,
        template: DatasetMeta,
        replace: bool = False,
        robot_type: str | None = None,
        chunks_size: int | None = None,
        data_files_size_in_mb: float | None = None,
        video_files_size_in_mb: float | None = None,
        recompute_camera_stats: bool = False,
        video_backend: str | None = None,
    ):
        self.dst = Path(dst)
        clean_interrupted(self.dst)
        if self.dst.exists() and not replace:
            raise FileExistsError(f"destination {self.dst} already exists; choose a new folder")
        if replace and not self.dst.is_dir():
            raise FileNotFoundError(f"cannot replace {self.dst}: it is not a dataset folder")
        self.replace = replace
        self.staging = staging_path(self.dst)
        info = template.info
        features = {k: dict(v) for k, v in template.features.items()}
        self.meta = DatasetMeta.create(
            self.staging,
            template.fps,
            features,
            robot_type=robot_type if robot_type is not None else template.robot_type,
            chunks_size=chunks_size or int(info.get("chunks_size", DEFAULT_CHUNKS_SIZE)),
            data_files_size_in_mb=data_files_size_in_mb or info.get("data_files_size_in_mb", DEFAULT_DATA_FILE_SIZE_MB),
            video_files_size_in_mb=video_files_size_in_mb or info.get("video_files_size_in_mb", DEFAULT_VIDEO_FILE_SIZE_MB),
        )
        self.signature = feature_signature(self.meta.features)
        self.schema = arrow_schema(self.meta.features)
        self.recompute_camera_stats = recompute_camera_stats
        self.video_backend = video_backend
        self.rows = SourceRows()
        self.episode_rows: list[dict] = []
        self.episode_stats: list[dict] = []
        self._next_index = 0
        self._data_pos = _FilePos()
        self._data_tables: list = []
        self._data_nbytes = 0
        self._video_pos = {k: _FilePos() for k in self.meta.video_keys}
        self._video_out: dict[str, VideoConcatenator] = {}
        self._committed = False
        self.staging.mkdir(parents=True)

    # ------------------------------------------------------------------ adding
    def check_compatible(self, source: DatasetMeta) -> None:
        """Raise ValueError naming the first difference of fps or features with the new dataset."""
        check_compatible(self.meta, source, reference_name="the new dataset")

    def add_episode(self, source: DatasetMeta, episode_index: int) -> int:
        """Copy episode `episode_index` of `source`; returns its index in the new dataset."""
        import pyarrow as pa

        meta = self.meta
        new_index = len(self.episode_rows)
        src_row = source.episodes[source.episodes.row_of(episode_index)]
        length = int(src_row["length"])
        table = self.rows.episode(source, episode_index)
        if table.num_rows != length:
            raise DatasetError(
                f"episode {episode_index} has {table.num_rows} rows in {source.data_file(episode_index)}, "
                f"but the metadata of {source.root} says {length}"
            )
        # Tasks: the source's task_index -> its string -> the new task list.
        src_tasks = table.column("task_index").to_numpy()
        bad = src_tasks[(src_tasks < 0) | (src_tasks >= len(source.task_list))]
        if bad.size:
            raise DatasetError(
                f"episode {episode_index} of {source.root} has task_index {int(bad[0])}, but the dataset has "
                f"{len(source.task_list)} tasks"
            )
        used = list(dict.fromkeys(src_tasks.tolist()))
        mapping = {old: meta.add_task(source.task_list[old]) for old in used}
        new_tasks = np.array([mapping[t] for t in src_tasks.tolist()], dtype=np.int64)
        first = self._next_index
        columns = {}
        for fld in self.schema:
            name = fld.name
            if name == "index":
                columns[name] = pa.array(np.arange(first, first + length, dtype=np.int64))
            elif name == "episode_index":
                columns[name] = pa.array(np.full(length, new_index, dtype=np.int64))
            elif name == "task_index":
                columns[name] = pa.array(new_tasks)
            else:
                if name not in table.column_names:
                    raise DatasetError(f"{source.data_file(episode_index)} has no column {name!r}")
                columns[name] = _cast(table.column(name), fld.type, name, source.data_file(episode_index))
        new_table = pa.table(columns, schema=self.schema)
        row: dict[str, Any] = {
            "episode_index": new_index,
            "tasks": [meta.task_list[t] for t in dict.fromkeys(new_tasks.tolist())],
            "length": length,
        }
        row |= self._add_rows(new_table)
        row |= {"dataset_from_index": first, "dataset_to_index": first + length}
        for key in meta.video_keys:
            row |= self._add_video(source, episode_index, key, length)
        stats = self._episode_stats(source, episode_index, src_row, new_table)
        self.episode_rows.append(row)
        self.episode_stats.append(stats)
        self._next_index += length
        return new_index

    def _add_rows(self, table) -> dict:
        limit = float(self.meta.info["data_files_size_in_mb"]) * 1024 * 1024
        if self._data_tables and self._data_nbytes + table.nbytes > limit:
            self._flush_data()
            self._data_pos.advance(self.meta.chunks_size)
        self._data_tables.append(table)
        self._data_nbytes += table.nbytes
        return {"data/chunk_index": self._data_pos.chunk, "data/file_index": self._data_pos.file}

    def _flush_data(self) -> None:
        import pyarrow as pa

        if not self._data_tables:
            return
        pos = self._data_pos
        path = self.staging / DATA_PATH.format(chunk_index=pos.chunk, file_index=pos.file)
        atomic.write_parquet(path, pa.concat_tables(self._data_tables))
        self._data_tables, self._data_nbytes = [], 0

    def _add_video(self, source: DatasetMeta, episode_index: int, key: str, length: int) -> dict:
        fps = self.meta.fps
        path = source.video_file(episode_index, key)
        from_ts = source.video_from_timestamp(episode_index, key)
        segment = read_segment(path, from_ts, from_ts + length / fps, fps=fps)
        if segment.num_frames != length:
            raise DatasetError(
                f"episode {episode_index} of {source.root}: {path} has {segment.num_frames} frames of {key!r} in "
                f"[{from_ts:.4f}s, {from_ts + length / fps:.4f}s), the episode has {length}"
            )
        limit = float(self.meta.info["video_files_size_in_mb"]) * 1024 * 1024
        pos = self._video_pos[key]
        out = self._video_out.get(key)
        if out is not None and (out.nbytes + segment.nbytes > limit or not out.compatible(segment)):
            out.close()
            pos.advance(self.meta.chunks_size)
            out = None
        if out is None:
            out = VideoConcatenator(self.staging / VIDEO_PATH.format(video_key=key, chunk_index=pos.chunk, file_index=pos.file))
            self._video_out[key] = out
        start = out.add(segment)
        return {
            f"videos/{key}/chunk_index": pos.chunk,
            f"videos/{key}/file_index": pos.file,
            f"videos/{key}/from_timestamp": start,
            f"videos/{key}/to_timestamp": start + length / fps,
        }

    def _episode_stats(self, source: DatasetMeta, episode_index: int, src_row: dict, table) -> dict:
        from robokit.data.stats import unflatten_stats
        from robokit.data.tools.stats_tools import (
            camera_stats_complete,
            episode_camera_stats,
            tabular_episode_stats,
        )

        stats = tabular_episode_stats(table, self.meta.features)
        source_stats = unflatten_stats(src_row)
        for key in self.meta.camera_keys:
            if not self.recompute_camera_stats and camera_stats_complete(source_stats.get(key), self.meta.features[key]):
                stats[key] = source_stats[key]
            else:
                stats[key] = episode_camera_stats(source, episode_index, key, backend=self.video_backend)
        return stats

    # ------------------------------------------------------------------ finishing
    def commit(self) -> DatasetMeta:
        """Write the metadata and move the new dataset to `dst`; returns its metadata (loaded from dst)."""
        from robokit.data.stats import aggregate_stats, flatten_stats

        if not self.episode_rows:
            raise ValueError(f"no episodes were added; {self.dst} would be an empty dataset")
        self._flush_data()
        for out in self._video_out.values():
            out.close()
        table = _episodes_table([r | flatten_stats(s) for r, s in zip(self.episode_rows, self.episode_stats)])
        meta = self.meta
        meta.episodes = Episodes(self._write_episodes(table))
        meta.stats = aggregate_stats(self.episode_stats)
        meta.write_tasks()
        meta.write_stats()
        meta.write_info()
        self._swap_in()
        self._committed = True
        return DatasetMeta.load(self.dst)

    def _write_episodes(self, table):
        import pyarrow as pa

        limit = META_FILE_SIZE_MB * 1024 * 1024
        per_file = max(1, int(limit // max(1, table.nbytes // max(1, table.num_rows))))
        pos = _FilePos()
        parts = []
        for start in range(0, table.num_rows, per_file):
            part = table.slice(start, per_file)
            n = part.num_rows
            part = part.append_column("meta/episodes/chunk_index", pa.array([pos.chunk] * n, pa.int64()))
            part = part.append_column("meta/episodes/file_index", pa.array([pos.file] * n, pa.int64()))
            atomic.write_parquet(self.staging / EPISODES_PATH.format(chunk_index=pos.chunk, file_index=pos.file), part)
            parts.append(part)
            pos.advance(self.meta.chunks_size)
        return pa.concat_tables(parts)

    def _swap_in(self) -> None:
        if not self.replace:
            os.rename(self.staging, self.dst)
            return
        backup = self.dst.parent / f".{self.dst.name}{BACKUP_PREFIX}{uuid.uuid4().hex[:8]}"
        os.rename(self.dst, backup)
        try:
            os.rename(self.staging, self.dst)
        except BaseException:
            os.rename(backup, self.dst)
            raise
        shutil.rmtree(backup, ignore_errors=True)

    def abort(self) -> None:
        for out in self._video_out.values():
            out.abort()
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> DatasetAssembler:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.abort()


def _cast(column, arrow_type, name: str, path: Path):
    if column.type == arrow_type:
        return column
    try:
        return column.cast(arrow_type)
    except Exception as e:
        raise DatasetError(f"{path}: column {name!r} has type {column.type}, cannot convert it to {arrow_type} ({e})") from e


def _episodes_table(rows: list[dict]):
    import pyarrow as pa

    from robokit.data.legacy import stats_column

    first = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"]
    names = first + [k for k in rows[0] if k not in first]
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        if name == "tasks":
            columns[name] = pa.array(values, pa.list_(pa.string()))
        elif name.startswith("stats/"):
            columns[name] = stats_column(values)
        else:
            columns[name] = pa.array(values)
    return pa.table(columns)
