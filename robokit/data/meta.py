"""Dataset metadata: meta/info.json, meta/stats.json, meta/tasks.parquet, meta/episodes/*.parquet."""

from __future__ import annotations

import json
import logging
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from robokit.data import atomic
from robokit.data.features import camera_keys, image_keys, validate_features, video_keys

logger = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
LEGACY_VERSIONS = ("v2.0", "v2.1")
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH, STATS_PATH, TASKS_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_MB = 100
DEFAULT_VIDEO_FILE_SIZE_MB = 200


class DatasetError(RuntimeError, ValueError):
    """A dataset on disk is missing, truncated or not in a layout robokit reads; the message names the file.

    Also a ValueError: it is about the user's input, so the CLI prints its message without a traceback."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No dataset at the given path (nor, for a repo id, on the hub)."""


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path} is not valid JSON ({e}); the file may be truncated") from e


def read_parquet(path: Path, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    try:
        return pq.read_table(path, columns=columns, memory_map=True)
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"cannot read parquet file {path} ({e}); the file may be truncated or corrupt") from e


class Episodes:
    """One row per episode, columnar (a pyarrow Table). `eps[i]` is a dict, `eps["length"]` a column."""

    def __init__(self, table):
        self.table = table
        self._columns: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, key: int | str):
        if isinstance(key, str):
            return self.column(key)
        if not -len(self) <= key < len(self):
            raise IndexError(f"episode row {key} out of range for {len(self)} episodes")
        return self.table.slice(key % len(self), 1).to_pylist()[0]

    def __iter__(self):
        return iter(self.table.to_pylist())

    @property
    def column_names(self) -> list[str]:
        return self.table.column_names

    def column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            if name not in self.table.column_names:
                raise KeyError(f"episodes metadata has no column {name!r}")
            col = self.table.column(name)
            self._columns[name] = col.to_numpy() if _is_primitive(col.type) else np.array(col.to_pylist(), dtype=object)
        return self._columns[name]

    def row_of(self, episode_index: int) -> int:
        """Row position of an episode index (episodes are stored sorted by index)."""
        indices = self.column("episode_index")
        pos = int(np.searchsorted(indices, episode_index))
        if pos >= len(indices) or indices[pos] != episode_index:
            raise KeyError(f"episode {episode_index} is not in this dataset (it has {len(indices)} episodes)")
        return pos

    def __getstate__(self):
        return {"table": self.table}

    def __setstate__(self, state):
        self.__init__(state["table"])


def _is_primitive(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type)


class DatasetMeta:
    """Everything about a dataset except its frames: info, features, tasks, episodes, stats."""

    def __init__(self, root: Path, info: dict, tasks: list[str], episodes: Episodes, stats: dict):
        self.root = Path(root)
        self.info = info
        self.task_list = tasks  # task_index -> natural-language string
        self.episodes = episodes
        self.stats = stats

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, root: str | Path) -> DatasetMeta:
        from robokit.data.stats import stats_from_json

        root = Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"dataset folder {root} does not exist")
        info_path = root / INFO_PATH
        info = read_json(info_path)
        version = info.get("codebase_version")
        if version in LEGACY_VERSIONS:
            from robokit.data.legacy import load_legacy_meta

            return load_legacy_meta(root, info)
        if version != CODEBASE_VERSION:
            raise DatasetError(
                f"{info_path} has codebase_version {version!r}; robokit reads {CODEBASE_VERSION!r} "
                f"and the older {' / '.join(LEGACY_VERSIONS)} layouts"
            )
        for key in ("fps", "features", "data_path"):
            if key not in info:
                raise DatasetError(f"{info_path} has no {key!r} key")
        episodes = load_episodes(root)
        _check_counts(root, info, episodes)
        if not len(episodes) and not (root / TASKS_PATH).exists():
            tasks = []  # no episode committed yet (tasks.parquet is written with the first one)
        else:
            tasks = load_tasks(root / TASKS_PATH)
        stats_path = root / STATS_PATH
        stats = stats_from_json(read_json(stats_path)) if stats_path.is_file() else _stats_from_episodes(root, episodes)
        return cls(root, info, tasks, episodes, stats)

    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: dict,
        robot_type: str | None = None,
        use_videos: bool = True,
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        data_files_size_in_mb: int = DEFAULT_DATA_FILE_SIZE_MB,
        video_files_size_in_mb: int = DEFAULT_VIDEO_FILE_SIZE_MB,
    ) -> DatasetMeta:
        """A new, empty dataset's metadata (nothing is written until `write_info`)."""
        if not isinstance(fps, int) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        features = validate_features(features)
        if not use_videos:
            for spec in features.values():
                if spec["dtype"] == "video":
                    spec["dtype"] = "image"
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": int(chunks_size),
            "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb,
            "fps": fps,
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_keys(features) else None,
            "features": features,
        }
        return cls(Path(root), info, [], empty_episodes(), {})

    # ---------------------------------------------------------------- properties
    @property
    def version(self) -> str:
        return self.info["codebase_version"]

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def features(self) -> dict[str, dict]:
        return self.info["features"]

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def total_episodes(self) -> int:
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        return int(self.episodes.column("length").sum()) if len(self.episodes) else 0

    @property
    def total_tasks(self) -> int:
        return len(self.task_list)

    @cached_property
    def tasks(self) -> dict[str, int]:
        return {task: i for i, task in enumerate(self.task_list)}

    @property
    def video_keys(self) -> list[str]:
        return video_keys(self.features)

    @property
    def image_keys(self) -> list[str]:
        return image_keys(self.features)

    @property
    def camera_keys(self) -> list[str]:
        return camera_keys(self.features)

    @property
    def chunks_size(self) -> int:
        return int(self.info.get("chunks_size", DEFAULT_CHUNKS_SIZE))

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.features[key]["shape"])

    # ---------------------------------------------------------------- paths
    def data_file(self, episode_index: int) -> Path:
        return self.root / self._format(self.info["data_path"], episode_index)

    def video_file(self, episode_index: int, key: str) -> Path:
        return self.root / self._format(self.info["video_path"], episode_index, key)

    def video_from_timestamp(self, episode_index: int, key: str) -> float:
        column = f"videos/{key}/from_timestamp"
        if column not in self.episodes.column_names:
            return 0.0
        return float(self.episodes.column(column)[self.episodes.row_of(episode_index)])

    def _format(self, template: str, episode_index: int, video_key: str | None = None) -> str:
        row = self.episodes.row_of(episode_index)
        prefix = f"videos/{video_key}/" if video_key is not None else "data/"
        names = self.episodes.column_names
        chunk = self.episodes.column(prefix + "chunk_index")[row] if prefix + "chunk_index" in names else 0
        file = self.episodes.column(prefix + "file_index")[row] if prefix + "file_index" in names else 0
        return template.format(
            chunk_index=int(chunk),
            file_index=int(file),
            episode_chunk=episode_index // self.chunks_size,
            episode_index=episode_index,
            video_key=video_key,
        )

    # ---------------------------------------------------------------- writing
    def write_info(self) -> None:
        self.info["total_episodes"] = self.total_episodes
        self.info["total_frames"] = self.total_frames
        self.info["total_tasks"] = self.total_tasks
        self.info["splits"] = {"train": f"0:{self.total_episodes}"} if self.total_episodes else {}
        atomic.write_json(self.root / INFO_PATH, self.info)

    def write_stats(self) -> None:
        from robokit.data.stats import stats_to_json

        atomic.write_json(self.root / STATS_PATH, stats_to_json(self.stats))

    def write_tasks(self) -> None:
        atomic.write_parquet(self.root / TASKS_PATH, tasks_table(self.task_list))

    def add_task(self, task: str) -> int:
        if task not in self.tasks:
            self.task_list.append(task)
            self.__dict__.pop("tasks", None)
        return self.tasks[task]

    def summary(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "codebase_version": self.version,
            "robot_type": self.robot_type,
            "fps": self.fps,
            "episodes": self.total_episodes,
            "frames": self.total_frames,
            "tasks": self.task_list,
            "features": {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in self.features.items()},
        }


def _stats_from_episodes(root: Path, episodes: Episodes) -> dict:
    """meta/stats.json is derived (written after each commit): without it, merge the per-episode stats."""
    from robokit.data.stats import aggregate_stats, unflatten_stats

    if not len(episodes) or not any(c.startswith("stats/") for c in episodes.column_names):
        return {}
    logger.warning("%s is missing; using the per-episode stats in meta/episodes (resume or "
                   "`robokit dataset recompute-stats` writes it again)", root / STATS_PATH)
    return aggregate_stats([unflatten_stats(row) for row in episodes])


def _check_counts(root: Path, info: dict, episodes: Episodes) -> None:
    """info.json is written after meta/episodes, so it may count fewer episodes (a kill between the
    two; `resume` repairs it) but never more: then episode metadata is missing or truncated."""
    claimed = info.get("total_episodes")
    if not isinstance(claimed, int) or claimed <= len(episodes):
        return
    files = episodes_files(root)
    where = f"{len(files)} file(s) in meta/episodes/" if files else "no file in meta/episodes/ (missing?)"
    raise DatasetError(
        f"{root / INFO_PATH} counts {claimed} episodes ({info.get('total_frames')} frames), but {root / 'meta/episodes'} "
        f"holds {len(episodes)} ({where}): the episode metadata is missing or truncated; restore it from a copy "
        "of the dataset (robokit cannot rebuild it from the data files)"
    )


def tasks_table(task_list: list[str]):
    """meta/tasks.parquet as LeRobot writes it: column task_index, the task string as the (pandas) index."""
    import pyarrow as pa

    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "str", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("__index_level_0__", pa.string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    return pa.table({"task_index": list(range(len(task_list))), "__index_level_0__": list(task_list)}, schema=schema)


def load_tasks(path: Path) -> list[str]:
    table = read_parquet(path)
    names = [n for n in table.column_names if n != "task_index"]
    if "task_index" not in table.column_names or not names:
        raise DatasetError(f"{path} must have a task_index column and the task strings (as its index or a 'task' column)")
    text_col = "task" if "task" in names else names[0]
    pairs = sorted(zip(table.column("task_index").to_pylist(), table.column(text_col).to_pylist()))
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetError(f"{path}: task_index values must be 0..{len(pairs) - 1}, got {[i for i, _ in pairs]}")
    return [t for _, t in pairs]


def episodes_files(root: Path) -> list[Path]:
    return sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


def load_episodes(root: Path) -> Episodes:
    import pyarrow as pa

    files = episodes_files(root)
    if not files:
        return empty_episodes()
    tables = [read_parquet(f) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    table = table.sort_by("episode_index")
    return Episodes(table)


def empty_episodes() -> Episodes:
    import pyarrow as pa

    return Episodes(pa.table({"episode_index": pa.array([], pa.int64()), "length": pa.array([], pa.int64())}))
