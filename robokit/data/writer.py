"""Recording episodes into the v3.0 layout.

Frames go to an in-memory episode buffer; camera frames of video features go straight to a
streaming encoder (one background thread per camera), so that encoding overlaps recording.
`save_episode()` hands the episode to a single committer thread, which appends it to the shared
files in a crash-safe order:

1. each camera's episode mp4 is remuxed onto the end of the current video file (temp + rename);
2. the episode's rows are appended to the current data parquet (temp + rename);
3. tasks.parquet if a task is new;
4. the episode's row is appended to meta/episodes (temp + rename)  <- the commit point;
5. stats.json and info.json (derived; rebuilt by `resume` if a kill lands before them).

A reader trusts meta/episodes, so a SIGKILL at any moment loses at most the episode being
recorded or committed; `repair()` (run by `resume`) trims what an interrupted commit left behind.

An episode gets its index when it is committed (the next after the last committed one), and
everything that can reject an episode (its table, its stats) is computed before the first file is
touched: a save that fails leaves the dataset as it was and uses up no index.
"""

from __future__ import annotations

import copy
import logging
import queue
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robokit.data import atomic
from robokit.data.features import DEFAULT_FEATURES, FeatureError, arrow_schema, check_frame_value
from robokit.data.meta import (
    DATA_PATH,
    EPISODES_PATH,
    VIDEO_PATH,
    DatasetError,
    DatasetMeta,
    Episodes,
    read_parquet,
)

logger = logging.getLogger(__name__)

TMP_DIR = ".robokit_tmp"  # per-episode video parts while recording; never referenced by metadata
STATS_FRAME_STRIDE = 5  # keep every 5th camera frame of an episode for its image stats
STATS_MAX_SIDE = 160  # ... spatially strided down to about this size


@dataclass
class VideoSettings:
    codec: str = "av1"
    """Video codec: av1 (libsvtav1), h264 (libx264) or hevc (libx265)."""
    pix_fmt: str = "yuv420p"
    g: int | None = 2
    """GOP size: a keyframe every g frames (small = cheap random access)."""
    crf: int | None = 30
    preset: int | str | None = None
    """Encoder speed preset; None picks the encoder module's default."""


@dataclass
class EpisodeBuffer:
    parts_dir: Path  # this episode's video parts while recording (under TMP_DIR)
    size: int = 0
    columns: dict[str, list] = field(default_factory=dict)
    task_indices: list[int] = field(default_factory=list)
    encoders: dict[str, Any] = field(default_factory=dict)
    stats_frames: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class _FilePos:
    chunk: int = 0
    file: int = 0

    def advance(self, chunks_size: int) -> None:
        self.file += 1
        if self.file >= chunks_size:
            self.chunk, self.file = self.chunk + 1, 0


class DatasetWriter:
    """Appends episodes to a dataset folder. Used through `RobotDataset.create` / `.resume`."""

    def __init__(self, meta: DatasetMeta, video: VideoSettings | None = None, meta_file_size_in_mb: float = 4.0):
        self.meta = meta
        self.video = video or VideoSettings()
        self.meta_file_size_in_mb = meta_file_size_in_mb
        self.root = meta.root
        self._user_keys = [k for k in meta.features if k not in DEFAULT_FEATURES]
        self._schema = arrow_schema(meta.features)
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []
        self._pending = 0
        self._buffers_made = 0
        self._done = threading.Condition()
        self._finalized = False
        self._init_positions()
        self._saved = self._committed_episodes()  # committed + handed to the committer and not failed
        self.buffer = self._new_buffer()

    # ------------------------------------------------------------------ positions
    def _init_positions(self) -> None:
        eps = self.meta.episodes
        self.data_pos = self._last_pos("data/") if len(eps) else _FilePos()
        self.video_pos = {k: self._last_pos(f"videos/{k}/") if len(eps) else _FilePos() for k in self.meta.video_keys}
        self.meta_pos = self._last_pos("meta/episodes/") if len(eps) else _FilePos()

    def _last_pos(self, prefix: str) -> _FilePos:
        eps = self.meta.episodes
        if prefix + "chunk_index" not in eps.column_names:
            return _FilePos()
        return _FilePos(int(eps.column(prefix + "chunk_index")[-1]), int(eps.column(prefix + "file_index")[-1]))

    def _new_buffer(self) -> EpisodeBuffer:
        self._buffers_made += 1
        return EpisodeBuffer(parts_dir=self.root / TMP_DIR / f"buffer_{self._buffers_made:06d}")

    def _committed_episodes(self) -> int:
        """The index the next committed episode gets: one past the last committed episode."""
        eps = self.meta.episodes
        return int(eps.column("episode_index")[-1]) + 1 if len(eps) else 0

    @property
    def num_episodes(self) -> int:
        """Committed episodes plus those saved and still being committed."""
        with self._done:
            return self._saved

    # ------------------------------------------------------------------ recording
    def add_frame(self, frame: dict[str, Any]) -> None:
        """Validate one frame and append it to the episode buffer. Nothing is kept if it is invalid."""
        self._raise_background_error()
        if self._finalized:
            raise RuntimeError("this dataset was finalized; open it with RobotDataset.resume(root) to add episodes")
        if not isinstance(frame, dict):
            raise FeatureError(f"add_frame expects a dict of feature values, got {type(frame).__name__}")
        task = frame.get("task")
        if not isinstance(task, str) or not task:
            raise FeatureError(f"add_frame: the frame needs a 'task' string (natural-language task), got {task!r}")
        given = set(frame) - {"task", "timestamp"}
        missing = [k for k in self._user_keys if k not in given]
        extra = sorted(given - set(self._user_keys))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise FeatureError(f"add_frame: {'; '.join(parts)}; the dataset declares {self._user_keys}")
        buf = self.buffer
        if "timestamp" in frame:
            expected = buf.size / self.meta.fps
            if abs(float(np.asarray(frame["timestamp"]).reshape(-1)[0]) - expected) > 1e-4:
                raise FeatureError(
                    f"add_frame: 'timestamp' is {float(np.asarray(frame['timestamp']).reshape(-1)[0])}, expected "
                    f"frame_index / fps = {expected} (frames are recorded at a fixed rate)"
                )
        # Validate everything before touching the buffer, so a bad frame leaves it usable.
        try:
            values = {k: check_frame_value(k, frame[k], self.meta.features[k]) for k in self._user_keys}
        except FeatureError as e:
            raise FeatureError(f"{e} (frame {buf.size} of the episode; the frame was not added)") from None
        for key, value in values.items():
            if self.meta.features[key]["dtype"] == "video":
                if key not in buf.encoders:
                    buf.encoders[key] = self._start_encoder(buf.parts_dir, key)
                buf.encoders[key].add_frame(value)
                if buf.size % STATS_FRAME_STRIDE == 0:
                    buf.stats_frames.setdefault(key, []).append(_shrink(value))
            else:
                buf.columns.setdefault(key, []).append(value)
                if self.meta.features[key]["dtype"] == "image" and buf.size % STATS_FRAME_STRIDE == 0:
                    buf.stats_frames.setdefault(key, []).append(_shrink(value))
        with self._lock:
            buf.task_indices.append(self.meta.add_task(task))
        buf.size += 1

    def _start_encoder(self, parts_dir: Path, key: str):
        from robokit.data.video_encode import StreamingVideoEncoder

        path = parts_dir / f"{key}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        v = self.video
        return StreamingVideoEncoder(path, self.meta.fps, codec=v.codec, pix_fmt=v.pix_fmt, g=v.g, crf=v.crf, preset=v.preset)

    def clear_episode_buffer(self) -> None:
        """Drop the frames recorded since the last save (e.g. to re-record a failed attempt)."""
        _discard(self.buffer)
        self.buffer = self._new_buffer()

    def save_episode(self, wait: bool = True) -> int:
        """Commit the buffered episode; returns its index.

        With `wait=True` (default) it returns once the episode is durable on disk. With `wait=False`
        it returns at once and the commit runs in the background (the next save or `finalize` waits);
        an episode not yet committed is lost if the process is killed. The index returned with
        `wait=False` assumes the episodes saved before it commit; if one of them fails, the next
        call raises that failure and the later episodes take the indices that follow the dataset's.

        If the commit fails, the episode buffer has already been cleared (its frames are discarded),
        the dataset is left as it was and no index is used up; the error says so.
        """
        self._raise_background_error()
        buf = self.buffer
        if buf.size == 0:
            raise ValueError("save_episode: the episode buffer is empty; call add_frame first")
        self.buffer = self._new_buffer()
        with self._done:
            index = self._saved
            self._saved += 1
            self._pending += 1
        self._ensure_thread()
        self._jobs.put(buf)
        if wait:
            self.wait()
        return index

    def wait(self) -> None:
        """Block until every saved episode is committed (or failed); raise a failure."""
        with self._done:
            while self._pending:
                self._done.wait(0.1)
        self._raise_background_error()

    def finalize(self) -> None:
        """Wait for pending commits, drop an unsaved episode buffer, stop the committer thread."""
        if self._finalized:
            return
        try:
            self.wait()
        finally:
            if self.buffer.size:
                logger.warning("finalize: dropping %d unsaved frames of the episode being recorded", self.buffer.size)
            self.clear_episode_buffer()
            if self._thread is not None:
                self._jobs.put(None)
                self._thread.join()
                self._thread = None
            shutil.rmtree(self.root / TMP_DIR, ignore_errors=True)
            self._finalized = True

    def _raise_background_error(self) -> None:
        with self._done:
            errors, self._errors = self._errors, []
        if errors:
            raise EpisodeSaveError("; ".join(errors))

    # ------------------------------------------------------------------ committing
    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="robokit-episode-committer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            buf = self._jobs.get()
            if buf is None:
                return
            index = self._committed_episodes()
            try:
                self._commit(buf, index)
            except _AfterCommitError as e:
                logger.debug("episode %d: derived metadata failed", index, exc_info=True)
                with self._done:
                    self._errors.append(str(e))
            except BaseException as e:  # reported to the recording thread; the next episodes still commit
                logger.debug("committing episode %d failed", index, exc_info=True)
                _discard(buf)
                message = (
                    f"saving episode {index} to {self.root} failed: {e}. Its {buf.size} frames were discarded "
                    f"(the episode buffer was cleared); the dataset is as it was, with {self._committed_episodes()} "
                    f"episodes, and index {index} is still free: record the episode again"
                )
                with self._done:
                    self._errors.append(message)
                    self._saved -= 1
            finally:
                with self._done:
                    self._pending -= 1
                    self._done.notify_all()

    def _commit(self, buf: EpisodeBuffer, episode_index: int) -> None:
        from robokit.data.stats import aggregate_stats, compute_episode_stats, flatten_stats

        meta, fps, n = self.meta, self.meta.fps, buf.size
        first_index = int(meta.episodes.column("dataset_to_index")[-1]) if len(meta.episodes) else 0
        row: dict[str, Any] = {"episode_index": episode_index}

        # 0. everything that can reject the episode, before any file changes
        parts = {}
        for key in meta.video_keys:
            frames = buf.encoders[key].close()
            if frames != n:
                raise RuntimeError(f"video {key!r} of the episode has {frames} frames, expected {n}")
            parts[key] = buf.parts_dir / f"{key}.mp4"
        columns = {k: np.stack(v) for k, v in buf.columns.items()}
        table = self._episode_table(buf, columns, episode_index, first_index)
        stats_input = {k: columns[k] for k in columns if meta.features[k]["dtype"] != "image"}
        stats_input |= {k: np.stack(v) for k, v in buf.stats_frames.items()}
        stats_input |= {
            "timestamp": np.arange(n) / fps,  # float64, as LeRobot computes its timestamp stats
            "frame_index": table.column("frame_index").to_numpy(),
            "episode_index": table.column("episode_index").to_numpy(),
            "index": table.column("index").to_numpy(),
            "task_index": table.column("task_index").to_numpy(),
        }
        ep_stats = compute_episode_stats(stats_input, meta.features, num_frames=n)
        row |= {
            "tasks": None,  # placed here to keep LeRobot's column order; filled in step 3
            "length": n,
            "dataset_from_index": first_index,
            "dataset_to_index": first_index + n,
        }
        row |= flatten_stats(ep_stats)

        # 1-4 change files; a failure puts back every file (and file position) as it was.
        rollback = atomic.Rollback()
        positions = (copy.copy(self.data_pos), copy.deepcopy(self.video_pos), copy.copy(self.meta_pos))
        total_tasks = meta.info.get("total_tasks")
        try:
            self._write_episode(buf, row, parts, table, rollback)
        except BaseException:
            rollback.restore()
            self.data_pos, self.video_pos, self.meta_pos = positions
            meta.info["total_tasks"] = total_tasks  # so that the next commit rewrites tasks.parquet
            raise
        rollback.discard()
        shutil.rmtree(buf.parts_dir, ignore_errors=True)
        logger.debug("committed episode %d (%d frames)", episode_index, n)

        # 5. derived metadata (rebuilt from meta/episodes by `resume` if this fails)
        try:
            meta.stats = aggregate_stats([meta.stats, ep_stats]) if meta.stats else ep_stats
            meta.write_stats()
            meta.write_info()
        except Exception as e:  # the episode is committed: say so instead of "discarded"
            raise _AfterCommitError(
                f"episode {episode_index} was saved, but updating meta/stats.json or meta/info.json failed ({e}); "
                f"RobotDataset.resume({str(self.root)!r}) rebuilds them"
            ) from e

    def _write_episode(self, buf: EpisodeBuffer, row: dict, parts: dict[str, Path], table, rollback) -> None:
        from robokit.data.video_encode import append_video, video_info

        meta, fps, n = self.meta, self.meta.fps, buf.size
        # 1. videos
        for key in meta.video_keys:
            part = parts[key]
            pos = self.video_pos[key]
            current = self.root / VIDEO_PATH.format(video_key=key, chunk_index=pos.chunk, file_index=pos.file)
            limit = meta.info["video_files_size_in_mb"] * 1024 * 1024
            if current.exists() and current.stat().st_size + part.stat().st_size > limit:
                pos.advance(meta.chunks_size)
                current = self.root / VIDEO_PATH.format(video_key=key, chunk_index=pos.chunk, file_index=pos.file)
            current.parent.mkdir(parents=True, exist_ok=True)
            rollback.keep(current)
            from_ts = append_video(current if current.exists() else None, part, current)
            if "info" not in meta.features[key]:
                meta.features[key]["info"] = video_info(current)
            row |= {
                f"videos/{key}/chunk_index": pos.chunk,
                f"videos/{key}/file_index": pos.file,
                f"videos/{key}/from_timestamp": from_ts,
                f"videos/{key}/to_timestamp": from_ts + n / fps,
            }

        # 2. data rows
        first_index = row["dataset_from_index"]
        self._append_rows(self.data_pos, DATA_PATH, table, meta.info["data_files_size_in_mb"], "index", first_index, rollback)
        row |= {"data/chunk_index": self.data_pos.chunk, "data/file_index": self.data_pos.file}

        # 3. tasks
        with self._lock:
            tasks_snapshot = list(meta.task_list)
        episode_tasks = [tasks_snapshot[i] for i in dict.fromkeys(buf.task_indices)]
        if meta.info.get("total_tasks") != len(tasks_snapshot) or not (self.root / "meta/tasks.parquet").exists():
            from robokit.data.meta import tasks_table

            rollback.keep(self.root / "meta/tasks.parquet")
            atomic.write_parquet(self.root / "meta/tasks.parquet", tasks_table(tasks_snapshot))
            meta.info["total_tasks"] = len(tasks_snapshot)

        # 4. the episode row: the commit point
        row["tasks"] = episode_tasks
        self._append_episode_row(row, rollback)

    def _episode_table(self, buf: EpisodeBuffer, columns: dict[str, np.ndarray], episode_index: int, first_index: int):
        import pyarrow as pa

        from robokit.data.images import encode_png

        n = buf.size
        arrays = {}
        for fld in self._schema:
            name = fld.name
            if name == "timestamp":
                arrays[name] = pa.array((np.arange(n) / self.meta.fps).astype(np.float32))
            elif name == "frame_index":
                arrays[name] = pa.array(np.arange(n, dtype=np.int64))
            elif name == "episode_index":
                arrays[name] = pa.array(np.full(n, episode_index, dtype=np.int64))
            elif name == "index":
                arrays[name] = pa.array(np.arange(first_index, first_index + n, dtype=np.int64))
            elif name == "task_index":
                arrays[name] = pa.array(np.asarray(buf.task_indices, dtype=np.int64))
            elif self.meta.features[name]["dtype"] == "image":
                pngs = [encode_png(frame) for frame in columns[name]]
                paths = [f"frame-{i:06d}.png" for i in range(n)]
                arrays[name] = pa.StructArray.from_arrays([pa.array(pngs, pa.binary()), pa.array(paths)], names=["bytes", "path"])
            elif self.meta.features[name]["dtype"] == "string":
                arrays[name] = pa.array([str(v) for v in columns[name]])
            else:
                arrays[name] = _fixed_list_array(columns[name], fld.type)
        return pa.table(arrays, schema=self._schema)

    def _append_rows(self, pos: _FilePos, template: str, table, limit_mb: float, order_col: str, keep_below: int,
                     rollback: atomic.Rollback) -> Path:
        """Append `table` to the file at `pos`, or start the next file when it would pass `limit_mb`.

        Rows with `order_col >= keep_below` already in the file are left-overs of an interrupted
        commit and are dropped.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        path = self.root / template.format(chunk_index=pos.chunk, file_index=pos.file)
        if path.exists() and path.stat().st_size + table.nbytes > limit_mb * 1024 * 1024:
            pos.advance(self.meta.chunks_size)
            path = self.root / template.format(chunk_index=pos.chunk, file_index=pos.file)
        if path.exists():
            existing = read_parquet(path)
            existing = existing.filter(pc.less(existing.column(order_col), keep_below))
            if existing.num_rows:
                table = pa.concat_tables([existing.cast(table.schema) if existing.schema != table.schema else existing, table])
        rollback.keep(path)
        atomic.write_parquet(path, table)
        return path

    def _append_episode_row(self, row: dict, rollback: atomic.Rollback) -> None:
        import pyarrow as pa

        first = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"]
        row = {k: row[k] for k in first} | {k: v for k, v in row.items() if k not in first}
        eps = self.meta.episodes
        new = pa.Table.from_pylist([row])
        # Place the row in the current meta file, or the next one past the size limit.
        pos = self.meta_pos
        path = self.root / EPISODES_PATH.format(chunk_index=pos.chunk, file_index=pos.file)
        if path.exists() and path.stat().st_size > self.meta_file_size_in_mb * 1024 * 1024:
            pos.advance(self.meta.chunks_size)
        new = new.append_column("meta/episodes/chunk_index", pa.array([pos.chunk], pa.int64()))
        new = new.append_column("meta/episodes/file_index", pa.array([pos.file], pa.int64()))
        if len(eps) and "meta/episodes/chunk_index" in eps.column_names:
            schema = eps.table.schema
            new = _conform(new, schema)
        path = self.root / EPISODES_PATH.format(chunk_index=pos.chunk, file_index=pos.file)
        file_rows = new
        if path.exists():
            import pyarrow.compute as pc

            existing = read_parquet(path)
            existing = existing.filter(pc.less(existing.column("episode_index"), row["episode_index"]))
            file_rows = pa.concat_tables([_conform(existing, new.schema), new])
        rollback.keep(path)
        atomic.write_parquet(path, file_rows)
        table = pa.concat_tables([_conform(eps.table, new.schema), new]) if len(eps) else new
        self.meta.episodes = Episodes(table)


class EpisodeSaveError(DatasetError):
    """A saved episode could not be committed (the message says what became of it)."""


class _AfterCommitError(RuntimeError):
    """The episode is committed; only derived metadata failed to update."""


def _discard(buf: EpisodeBuffer) -> None:
    """Stop an episode's encoders and delete its video parts."""
    for enc in buf.encoders.values():
        enc.abort()
    shutil.rmtree(buf.parts_dir, ignore_errors=True)


def _conform(table, schema):
    """Reorder and cast `table` to `schema` when they have the same columns (LeRobot's and robokit's
    episode rows may differ in column order and list types)."""
    if table.schema.equals(schema):
        return table
    if set(table.column_names) == set(schema.names):
        try:
            return table.select(schema.names).cast(schema)
        except Exception:  # noqa: BLE001 - fall through to the explicit error below
            pass
    raise RuntimeError(
        "episode metadata columns differ from the existing dataset's: "
        f"{sorted(set(table.column_names) ^ set(schema.names)) or 'same names, incompatible types'}"
    )


def _fixed_list_array(values: np.ndarray, arrow_type):
    import pyarrow as pa

    if not pa.types.is_fixed_size_list(arrow_type):
        return pa.array(values.reshape(len(values)), type=arrow_type)
    flat = values.reshape(-1)
    inner = arrow_type
    sizes = []
    while pa.types.is_fixed_size_list(inner):
        sizes.append(inner.list_size)
        inner = inner.value_type
    array = pa.array(flat, type=inner)
    for size in reversed(sizes):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def _shrink(frame: np.ndarray) -> np.ndarray:
    step = max(1, max(frame.shape[0], frame.shape[1]) // STATS_MAX_SIDE)
    return np.ascontiguousarray(frame[::step, ::step])
