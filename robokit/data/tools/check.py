"""Validate a dataset folder and name every fault: `robokit dataset check ROOT`.

Checks, in order (a failed step that later steps depend on stops the check there):
1. metadata loads: info.json, tasks, episodes (and, for v2.x, the JSON-lines files);
2. info.json totals agree with meta/episodes; episode indices 0..E-1 in order; frame ranges
   contiguous (`dataset_from_index` of an episode = `dataset_to_index` of the previous one,
   `to - from = length`); every episode's tasks are known;
3. data rows: each episode has `length` rows with `index` = from..to-1, `frame_index` = 0..len-1,
   `timestamp` = frame_index / fps, a valid `task_index`; no rows of unknown episodes;
4. cameras: every episode's first and last frame decodes (every frame with `full=True`) at the
   time it is expected; each video file lasts at least to the episodes' `to_timestamp`;
5. stats: meta/stats.json and per-episode stats exist for every feature, with every key and
   the feature's shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robokit.data.features import stored_shape_problem
from robokit.data.meta import STATS_PATH, DatasetError, DatasetMeta, read_parquet
from robokit.data.stats import STAT_KEYS

logger = logging.getLogger(__name__)

LEGACY_STAT_KEYS = ("min", "max", "mean", "std", "count")
TIMESTAMP_TOLERANCE_S = 1e-4
MAX_FAULTS_PER_KIND = 20  # beyond this, one line says how many more of that kind there were
DECODE_BATCH = 64  # frames decoded per call with full=True (a failing batch is retried frame by frame)


@dataclass
class CheckReport:
    root: Path
    faults: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.faults

    def fault(self, message: str) -> None:
        self.faults.append(message)

    def render(self) -> str:
        lines = [f"check {self.root}"]
        if self.summary:
            s = self.summary
            lines.append(
                f"  {s.get('codebase_version')} | {s.get('episodes')} episodes | {s.get('frames')} frames | "
                f"{s.get('fps')} fps | cameras: {', '.join(s.get('cameras', [])) or 'none'}"
            )
        lines += [f"  ok    {p}" for p in self.passed]
        lines += [f"  WARN  {w}" for w in self.warnings]
        lines += [f"  FAULT {f}" for f in self.faults]
        lines.append(f"{'PASSED' if self.ok else 'FAILED'}: {len(self.faults)} fault(s), {len(self.warnings)} warning(s)")
        return "\n".join(lines)


class _Limited:
    """Collects faults of one kind, keeping the first MAX_FAULTS_PER_KIND."""

    def __init__(self, report: CheckReport, kind: str):
        self.report, self.kind, self.count = report, kind, 0

    def __call__(self, message: str) -> None:
        self.count += 1
        if self.count <= MAX_FAULTS_PER_KIND:
            self.report.fault(message)

    def close(self, passed: str) -> None:
        if self.count > MAX_FAULTS_PER_KIND:
            self.report.fault(f"... and {self.count - MAX_FAULTS_PER_KIND} more {self.kind} fault(s)")
        if self.count == 0:
            self.report.passed.append(passed)


def check_dataset(root: str | Path, full: bool = False, video_backend: str | None = None,
                  tolerance_s: float = TIMESTAMP_TOLERANCE_S, progress: bool = True) -> CheckReport:
    """Validate the dataset at `root`; never raises for a fault in the dataset (see `report.faults`)."""
    report = CheckReport(Path(root))
    try:
        meta = DatasetMeta.load(root)
    except (DatasetError, ValueError, KeyError) as e:
        report.fault(f"metadata: {e}")
        return report
    report.summary = {
        "codebase_version": meta.version, "episodes": meta.total_episodes, "frames": meta.total_frames,
        "fps": meta.fps, "cameras": meta.camera_keys,
    }
    steps = [
        ("data", lambda: _check_data(meta, report)),
        ("cameras", lambda: _check_cameras(meta, report, full, video_backend, tolerance_s, progress)),
        ("stats", lambda: _check_stats(meta, report)),
    ]
    try:
        usable = _check_episodes(meta, report)
    except Exception as e:  # noqa: BLE001 - a dataset odd enough to break a step is reported, not raised
        report.fault(f"metadata: checking meta/episodes failed: {type(e).__name__}: {e}")
        usable = False
    if not usable:
        return report
    for name, step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001
            report.fault(f"{name}: the check stopped on {type(e).__name__}: {e}")
    return report


# ---------------------------------------------------------------------------------- metadata
def _check_episodes(meta: DatasetMeta, report: CheckReport) -> bool:
    """Totals and episode table; returns False when the table is unusable for the next steps."""
    fault = _Limited(report, "metadata")
    info, eps = meta.info, meta.episodes
    for key, actual in (("total_episodes", meta.total_episodes), ("total_frames", meta.total_frames),
                        ("total_tasks", meta.total_tasks)):
        if key not in info:
            fault(f"info.json: no {key!r} key (the dataset has {actual})")
        elif int(info[key]) != actual:
            source = "meta/tasks" if key == "total_tasks" else "meta/episodes"
            fault(f"info.json: {key} is {info[key]}, but {source} has {actual}")
    if not len(eps):
        fault.close("metadata: info.json agrees with meta/episodes (no episodes)")
        report.warnings.append("meta/episodes: the dataset has no episodes yet (nothing else to check)")
        return False
    required = ["episode_index", "length", "dataset_from_index", "dataset_to_index"]
    missing = [c for c in required if c not in eps.column_names]
    if missing:
        fault(f"meta/episodes: missing columns {missing}")
        fault.close("")
        return False
    indices = eps.column("episode_index").astype(np.int64)
    lengths = eps.column("length").astype(np.int64)
    starts = eps.column("dataset_from_index").astype(np.int64)
    ends = eps.column("dataset_to_index").astype(np.int64)
    expected = np.arange(len(indices))
    usable = True
    if not np.array_equal(indices, expected):
        first = int(np.flatnonzero(indices != expected)[0])
        fault(f"meta/episodes: episode indices must be 0..{len(indices) - 1} in order; row {first} has "
              f"episode_index {int(indices[first])}, expected {first}")
        usable = len(np.unique(indices)) == len(indices)  # the later steps look episodes up by index
    for row in np.flatnonzero(lengths <= 0):
        fault(f"meta/episodes: episode {int(indices[row])} has length {int(lengths[row])}, expected > 0")
    for row in np.flatnonzero(ends - starts != lengths):
        fault(f"meta/episodes: episode {int(indices[row])} spans dataset_from_index {int(starts[row])} .. "
              f"dataset_to_index {int(ends[row])}, which is not its length {int(lengths[row])}")
    previous_end = np.concatenate([[0], ends[:-1]])
    for row in np.flatnonzero(starts != previous_end):
        fault(f"meta/episodes: frame indices are not continuous: episode {int(indices[row])} starts at "
              f"dataset_from_index {int(starts[row])}, expected {int(previous_end[row])}")
    if "tasks" in eps.column_names:
        known = set(meta.task_list)
        for row, tasks in enumerate(eps.column("tasks")):
            unknown = [t for t in (tasks if tasks is not None else []) if t not in known]
            if unknown:
                fault(f"meta/episodes: episode {int(indices[row])} lists tasks {unknown} that are not in the task list")
    fault.close(f"metadata: {meta.total_episodes} episodes, {meta.total_frames} frames, {meta.total_tasks} tasks agree with info.json")
    return usable


# ---------------------------------------------------------------------------------- data rows
def _check_data(meta: DatasetMeta, report: CheckReport) -> None:
    fault = _Limited(report, "data")
    eps = meta.episodes
    columns = [k for k, v in meta.features.items() if v["dtype"] != "video"]
    by_file: dict[Path, list[int]] = {}
    for ep in eps.column("episode_index").tolist():
        by_file.setdefault(meta.data_file(int(ep)), []).append(int(ep))
    for path, file_eps in by_file.items():
        try:
            table = read_parquet(path)
        except DatasetError as e:
            fault(f"data: {e} (episodes {_ranges(file_eps)})")
            continue
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            fault(f"data: {path} lacks the columns {missing}")
            continue
        for key in columns:
            problem = stored_shape_problem(table.schema.field(key).type, meta.features[key])
            if problem:
                fault(f"data: {path}: column {key!r} {problem}, but info.json declares shape {list(meta.features[key]['shape'])}")
        ep_col = table.column("episode_index").to_numpy()
        index = table.column("index").to_numpy()
        frame_index = table.column("frame_index").to_numpy()
        timestamp = table.column("timestamp").to_numpy().astype(np.float64)
        task_index = table.column("task_index").to_numpy()
        stray = sorted(set(np.unique(ep_col).tolist()) - set(file_eps))
        if stray:
            fault(f"data: {path} has rows of episodes {_ranges(stray)} that meta/episodes does not place in this file")
        if len(index) > 1 and not (np.diff(index) > 0).all():
            bad = int(np.flatnonzero(np.diff(index) <= 0)[0])
            fault(f"data: {path} is not sorted by index: row {bad + 1} has index {int(index[bad + 1])} after {int(index[bad])}")
        order = np.argsort(ep_col, kind="stable")
        sorted_eps = ep_col[order]
        for ep in file_eps:
            row = eps.row_of(ep)
            length = int(eps.column("length")[row])
            start = int(eps.column("dataset_from_index")[row])
            lo, hi = np.searchsorted(sorted_eps, ep, "left"), np.searchsorted(sorted_eps, ep, "right")
            rows = order[lo:hi]
            where = f"data: episode {ep} ({path.name})"
            if len(rows) != length:
                fault(f"{where}: {len(rows)} rows, meta/episodes says length {length}")
                continue
            if len(rows) and rows[-1] - rows[0] + 1 != len(rows):
                fault(f"{where}: its rows are not contiguous in the file")
            got = index[rows]
            want = np.arange(start, start + length)
            if not np.array_equal(got, want):
                bad = int(np.flatnonzero(got != want)[0])
                fault(f"{where}: index is not continuous: frame {bad} has index {int(got[bad])}, expected {int(want[bad])}")
            fi = frame_index[rows]
            if not np.array_equal(fi, np.arange(length)):
                bad = int(np.flatnonzero(fi != np.arange(length))[0])
                fault(f"{where}: frame_index must be 0..{length - 1}; row {bad} has {int(fi[bad])}")
            ts_error = np.abs(timestamp[rows] - fi / meta.fps)
            if (ts_error > TIMESTAMP_TOLERANCE_S).any():
                bad = int(np.argmax(ts_error))
                fault(f"{where}: timestamp {timestamp[rows][bad]:.6f} at frame_index {int(fi[bad])} is not "
                      f"frame_index / fps = {fi[bad] / meta.fps:.6f}")
            ti = task_index[rows]
            invalid = ti[(ti < 0) | (ti >= meta.total_tasks)]
            if invalid.size:
                fault(f"{where}: task_index {int(invalid[0])} is not a task (the dataset has {meta.total_tasks})")
    referenced = set(by_file)
    if meta.version == "v3.0":
        for path in sorted((meta.root / "data").glob("chunk-*/file-*.parquet")):
            if path not in referenced:
                report.warnings.append(f"data: {path.relative_to(meta.root)} is not referenced by any episode")
    fault.close(f"data: {meta.total_frames} rows in {len(by_file)} file(s): indices, frame_index, timestamps, task_index")


# ---------------------------------------------------------------------------------- cameras
def _check_cameras(meta: DatasetMeta, report: CheckReport, full: bool, backend: str | None,
                   tolerance_s: float, progress: bool) -> None:
    if not meta.camera_keys:
        return
    from robokit.progress import progress as progress_bar

    fault = _Limited(report, "camera")
    eps = meta.episodes
    lengths = dict(zip(eps.column("episode_index").tolist(), eps.column("length").tolist()))
    durations: dict[Path, float | None] = {}
    decoded = 0
    total = len(meta.camera_keys) * (sum(lengths.values()) if full else sum(min(2, n) for n in lengths.values()))
    bar = progress_bar(total=total, desc=f"check {'every frame' if full else 'first/last frames'}", unit="frame",
               disable=not progress, leave=False)
    for key in meta.camera_keys:
        spec = meta.features[key]
        shape = tuple(int(s) for s in spec["shape"])
        for ep in lengths:
            length = int(lengths[ep])
            where = f"{key}: episode {ep}"
            if spec["dtype"] == "video":
                path = meta.video_file(ep, key)
                if not path.is_file():
                    fault(f"{where}: video file {path} is missing")
                    continue
                if path not in durations:
                    durations[path] = _duration(path)
                start = meta.video_from_timestamp(ep, key)
                end = start + length / meta.fps
                column = f"videos/{key}/to_timestamp"
                if column in eps.column_names:
                    stored_end = float(eps.column(column)[eps.row_of(ep)])
                    if abs(stored_end - end) > tolerance_s:
                        fault(f"{where}: to_timestamp {stored_end:.6f} s is not from_timestamp + length / fps = {end:.6f} s")
                    end = max(end, stored_end)
                if durations[path] is not None and durations[path] + tolerance_s < end:
                    fault(f"{where}: {path.name} lasts {durations[path]:.4f} s, but the episode ends at {end:.4f} s")
            positions = np.arange(length) if full else np.unique([0, length - 1])
            for batch in np.array_split(positions, max(1, len(positions) // DECODE_BATCH)):
                frames, failures = _decode(meta, ep, key, batch, backend, tolerance_s)
                bar.update(len(batch))
                if failures:
                    bad = sorted(failures)
                    fault(f"{where}: frame(s) {_ranges(bad)} of {length} do not decode ({_where_in_file(meta, ep, key)}): "
                          f"{failures[bad[0]]}")
                if frames is None:
                    continue
                decoded += len(frames)
                if frames.shape[1:] != shape:
                    fault(f"{where}: frames are {tuple(frames.shape[1:])}, the feature declares {list(shape)}")
                    break
    bar.close()
    what = "every frame" if full else "first and last frame of every episode (--full decodes every frame)"
    fault.close(f"cameras: {what} decodes for {len(meta.camera_keys)} camera(s) ({decoded} frames)")


def _decode(meta: DatasetMeta, ep: int, key: str, positions: np.ndarray, backend: str | None,
            tolerance_s: float) -> tuple[np.ndarray | None, dict[int, str]]:
    """Decode `positions` of one episode; if the batch fails, frame by frame to find which fail.

    Returns the frames that decoded (None if some did not) and {position: error} of those that did not."""
    from robokit.data.tools.stats_tools import episode_camera_frames

    try:
        return episode_camera_frames(meta, ep, key, positions, backend=backend, tolerance_s=tolerance_s), {}
    except Exception as e:  # noqa: BLE001 - every decoding failure is a fault to report; find the frames below
        logger.debug("decoding frames %s of episode %d (%s) failed: %s", _ranges(positions.tolist()), ep, key, e)
    failures = {}
    for p in positions.tolist():
        try:
            episode_camera_frames(meta, ep, key, np.array([p]), backend=backend, tolerance_s=tolerance_s)
        except Exception as e:  # noqa: BLE001
            failures[int(p)] = str(e)
    if not failures:  # only the batch failed (e.g. a decoder's state across frames): report it whole
        failures = {int(p): "decoding them together failed" for p in positions.tolist()}
    return None, failures


def _where_in_file(meta: DatasetMeta, ep: int, key: str) -> str:
    if meta.features[key]["dtype"] != "video":
        return str(meta.data_file(ep).relative_to(meta.root))
    return f"{meta.video_file(ep, key).relative_to(meta.root)} from {meta.video_from_timestamp(ep, key):.3f} s"


def _duration(path: Path) -> float | None:
    from robokit.data.video_encode import video_duration_s

    try:
        return video_duration_s(path)
    except Exception:  # noqa: BLE001 - a file that cannot be opened is reported by the decoding step
        return None


# ---------------------------------------------------------------------------------- stats
def _check_stats(meta: DatasetMeta, report: CheckReport) -> None:
    from robokit.data.stats import unflatten_stats

    fault = _Limited(report, "stats")
    keys = STAT_KEYS if meta.version == "v3.0" else LEGACY_STAT_KEYS
    features = {k: v for k, v in meta.features.items() if v["dtype"] != "string"}
    if meta.version == "v3.0" and not (meta.root / STATS_PATH).is_file():  # meta.stats falls back to the episodes'
        fault("stats: meta/stats.json is missing (RobotDataset.resume or `robokit dataset recompute-stats` writes it)")
    elif not meta.stats:
        fault("stats: meta/stats.json is missing or empty" if meta.version == "v3.0"
              else "stats: neither meta/episodes_stats.jsonl nor meta/stats.json has stats")
    else:
        for name, spec in features.items():
            _check_feature_stats(meta.stats.get(name), name, spec, keys, "meta/stats.json", fault)
    stat_columns = [c for c in meta.episodes.column_names if c.startswith("stats/")]
    if not stat_columns:
        fault("stats: meta/episodes has no per-episode stats")
    else:
        for row in meta.episodes:
            stats = unflatten_stats(row)
            for name, spec in features.items():
                _check_feature_stats(stats.get(name), name, spec, keys, f"episode {row['episode_index']} stats", fault)
    fault.close(f"stats: {len(features)} features have {', '.join(keys)} (dataset and every episode)")


def _check_feature_stats(stats: dict | None, name: str, spec: dict, keys: tuple[str, ...], where: str, fault) -> None:
    if stats is None:
        fault(f"{where}: no stats for feature {name!r}")
        return
    missing = [k for k in keys if k not in stats]
    if missing:
        fault(f"{where}: feature {name!r} lacks {missing}")
    shape = tuple(int(s) for s in spec["shape"])
    if spec["dtype"] in ("image", "video"):
        expected = (shape[-1], 1, 1)
    else:
        expected = shape
    for key in keys:
        if key not in stats:
            continue
        got = np.asarray(stats[key]).shape
        want = (1,) if key == "count" else expected
        if got != want and not (want == (1,) and got == ()):
            fault(f"{where}: {name!r} {key} has shape {got}, expected {want}")


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    values = sorted(int(v) for v in values)
    out, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ", ".join(out)
