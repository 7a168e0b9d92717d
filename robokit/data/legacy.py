"""Reading the older "v2.0" / "v2.1" layout: one parquet and one mp4 per episode, JSON-lines metadata.

```
meta/info.json             codebase_version "v2.1", data_path / video_path templates with
                           {episode_chunk} and {episode_index}, total_chunks, total_videos
meta/episodes.jsonl        {"episode_index", "tasks": [str, ...], "length"} per line
meta/episodes_stats.jsonl  {"episode_index", "stats": {feature: {min, max, mean, std, count}}} (v2.1)
meta/stats.json            dataset stats (v2.0; often absent in v2.1)
meta/tasks.jsonl           {"task_index", "task"} per line
data/chunk-000/episode_000000.parquet
videos/chunk-000/<video_key>/episode_000000.mp4
```

`load_legacy_meta` turns this into the same in-memory `DatasetMeta` as a v3.0 dataset (an episodes
table with `dataset_from_index` / `dataset_to_index` and flattened per-episode stats), so the
reader and the tools work on both. The templates in info.json are kept: `DatasetMeta._format`
fills `{episode_chunk}` / `{episode_index}` / `{video_key}`, and every video starts at 0 s.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from robokit.data.meta import DatasetError, DatasetMeta, Episodes, read_json

logger = logging.getLogger(__name__)

EPISODES_JSONL = "meta/episodes.jsonl"
EPISODES_STATS_JSONL = "meta/episodes_stats.jsonl"
TASKS_JSONL = "meta/tasks.jsonl"
STATS_JSON = "meta/stats.json"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file as a dict; a bad line is an error naming the file and line."""
    if not path.is_file():
        raise DatasetError(f"missing file {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path} line {number} is not valid JSON ({e}); the file may be truncated") from e
            if not isinstance(row, dict):
                raise DatasetError(f"{path} line {number} is a {type(row).__name__}, expected a JSON object")
            rows.append(row)
    return rows


def _require(row: dict, keys: tuple[str, ...], path: Path, number: int) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise DatasetError(f"{path} row {number} lacks {missing}; expected keys {list(keys)}")


def load_legacy_tasks(root: Path) -> list[str]:
    path = root / TASKS_JSONL
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        _require(row, ("task_index", "task"), path, i)
    pairs = sorted((int(r["task_index"]), str(r["task"])) for r in rows)
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetError(f"{path}: task_index values must be 0..{len(pairs) - 1}, got {[i for i, _ in pairs]}")
    return [t for _, t in pairs]


def load_legacy_episode_stats(root: Path) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """{episode_index: stats} from meta/episodes_stats.jsonl ({} when the file is absent, as in v2.0)."""
    from robokit.data.stats import stats_from_json

    path = root / EPISODES_STATS_JSONL
    if not path.is_file():
        return {}
    out = {}
    for i, row in enumerate(read_jsonl(path)):
        _require(row, ("episode_index", "stats"), path, i)
        try:
            out[int(row["episode_index"])] = stats_from_json(row["stats"])
        except ValueError as e:
            raise DatasetError(f"{path} row {i} (episode {row['episode_index']}): {e}") from e
    return out


def load_legacy_meta(root: str | Path, info: dict) -> DatasetMeta:
    """A `DatasetMeta` for a v2.0 / v2.1 dataset folder (read-only; convert it to write)."""
    import pyarrow as pa

    from robokit.data.stats import aggregate_stats, flatten_stats, stats_from_json

    root = Path(root)
    info_path = root / "meta/info.json"
    for key in ("fps", "features", "data_path"):
        if key not in info:
            raise DatasetError(f"{info_path} has no {key!r} key")
    if any(spec.get("dtype") == "video" for spec in info["features"].values()) and not info.get("video_path"):
        raise DatasetError(f"{info_path} declares video features but has no 'video_path' template")
    tasks = load_legacy_tasks(root)

    path = root / EPISODES_JSONL
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        _require(row, ("episode_index", "length"), path, i)
    rows.sort(key=lambda r: int(r["episode_index"]))
    indices = [int(r["episode_index"]) for r in rows]
    if len(set(indices)) != len(indices):
        dupes = sorted({e for e in indices if indices.count(e) > 1})
        raise DatasetError(f"{path} lists episodes {dupes} more than once")
    lengths = np.array([int(r["length"]) for r in rows], dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths

    episode_stats = load_legacy_episode_stats(root)
    stats_columns: dict[str, list] = {}
    if episode_stats:
        missing = [e for e in indices if e not in episode_stats]
        if missing:
            logger.warning("%s has no stats for episodes %s", root / EPISODES_STATS_JSONL, missing[:10])
        flat_rows = [flatten_stats(episode_stats.get(e, {})) for e in indices]
        names = list(dict.fromkeys(k for r in flat_rows for k in r))
        stats_columns = {name: [r.get(name) for r in flat_rows] for name in names}

    columns: dict[str, Any] = {
        "episode_index": pa.array(indices, pa.int64()),
        "tasks": pa.array([[str(t) for t in r.get("tasks", [])] for r in rows], pa.list_(pa.string())),
        "length": pa.array(lengths, pa.int64()),
        "dataset_from_index": pa.array(starts, pa.int64()),
        "dataset_to_index": pa.array(ends, pa.int64()),
    }
    for name, values in stats_columns.items():
        columns[name] = stats_column(values)
    episodes = Episodes(pa.table(columns))

    if episode_stats:
        present = [episode_stats[e] for e in indices if e in episode_stats]
        stats = aggregate_stats(present) if present else {}
    elif (root / STATS_JSON).is_file():
        stats = stats_from_json(read_json(root / STATS_JSON))
    else:
        stats = {}

    declared = info.get("total_episodes")
    if declared is not None and int(declared) != len(rows):
        logger.warning("%s says total_episodes=%s but %s lists %d episodes", info_path, declared, path, len(rows))
    return DatasetMeta(root, info, tasks, episodes, stats)


def stats_column(values: list):
    """A per-episode stats column of the episodes table: nested lists, float64 except integer-valued columns (count, min/max of ints)."""
    import pyarrow as pa

    present = [np.asarray(v) for v in values if v is not None]
    if present and all(a.dtype.kind in "iu" for a in present):
        leaf = pa.int64()
    elif present and all(a.dtype.kind == "b" for a in present):
        leaf = pa.bool_()
    else:
        leaf = pa.float64()
        values = [None if v is None else np.asarray(v, dtype=np.float64).tolist() for v in values]
    ndim = present[0].ndim if present else 1
    arrow_type = leaf
    for _ in range(max(ndim, 1)):
        arrow_type = pa.list_(arrow_type)
    return pa.array(values, arrow_type)
