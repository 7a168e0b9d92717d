"""RobotDataset: a map-style torch Dataset over episodes in the LeRobot v3.0 layout (and v2.1)."""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from robokit.data.features import stored_shape_problem
from robokit.data.meta import INFO_PATH, DatasetError, DatasetMeta, DatasetNotFoundError, read_parquet
from robokit.data.windows import delta_frames, window
from robokit.data.writer import DatasetWriter, VideoSettings

logger = logging.getLogger(__name__)

REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class RobotDataset(torch.utils.data.Dataset):
    """Episodes of robot data: `ds[i]` is a dict of tensors (plus the `task` string) for frame `i`.

    Args:
        root_or_repo_id: a local dataset folder, or a hub repo id ("user/name") downloaded into
            the local cache (only the files of the requested episodes).
        episodes: episode indices to load (default: all).
        delta_timestamps: `{feature: [seconds, ...]}` windows relative to each frame, clamped at
            episode edges; `<feature>_is_pad` marks clamped positions.
        tolerance_s: a decoded video frame or window offset may differ from the requested time
            by at most this much; otherwise a clear error (never a neighbouring frame).
        image_transforms: callable applied to every camera frame (float (C, H, W) in [0, 1]).
        return_uint8: return camera frames as uint8 (C, H, W) instead of float in [0, 1].
        revision: hub revision (branch, tag or commit) for a repo id.
        video_backend: "torchcodec" or "pyav"; default: the fastest that works here.
        seed: makes `image_transforms` reproducible: sample `i` always gets the same augmentation.
        frame_cache: serve camera frames from a decoded-frame cache beside the dataset (built on
            first use; see `robokit.data.frame_cache`); a (height, width) tuple also resizes.
        cache_dir: where hub datasets are downloaded (default ~/.cache/robokit/datasets).
    """

    def __init__(
        self,
        root_or_repo_id: str | Path,
        episodes: Sequence[int] | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        tolerance_s: float = 1e-4,
        image_transforms: Callable | None = None,
        return_uint8: bool = False,
        revision: str | None = None,
        video_backend: str | None = None,
        seed: int | None = None,
        frame_cache: bool | tuple[int, int] = False,
        cache_dir: str | Path | None = None,
    ):
        super().__init__()
        self.repo_id: str | None = None
        root = Path(root_or_repo_id)
        if not root.exists() and REPO_ID.match(str(root_or_repo_id)):
            from robokit.data import hub

            self.repo_id = str(root_or_repo_id)
            root = hub.download(self.repo_id, revision=revision, episodes=episodes, cache_dir=cache_dir)
        elif not root.exists():
            raise DatasetNotFoundError(f"dataset folder {str(root)!r} does not exist, and it is not a hub repo id (user/name)")
        self.meta = DatasetMeta.load(root)
        self.root = self.meta.root
        self.tolerance_s = tolerance_s
        self.image_transforms = image_transforms
        self._transform_takes_generator = _accepts_generator(image_transforms)
        self.return_uint8 = return_uint8
        self.video_backend = video_backend
        self.seed = seed
        self.frame_cache = frame_cache
        self.writer: DatasetWriter | None = None
        self.delta_timestamps = delta_timestamps
        self._deltas = delta_frames(delta_timestamps, self.meta.fps, self.meta.features, tolerance_s)
        self._requested_episodes = None if episodes is None else [int(e) for e in episodes]
        self._loaded_for: int | None = None
        self._load()

    # ------------------------------------------------------------------ writing
    @classmethod
    def create(
        cls,
        root: str | Path,
        fps: int,
        features: dict[str, dict],
        robot_type: str | None = None,
        use_videos: bool = True,
        video_codec: str = "av1",
        video_crf: int | None = 30,
        video_gop: int | None = 2,
        video_preset: int | str | None = None,
        chunks_size: int = 1000,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
    ) -> RobotDataset:
        """Start a new dataset in `root`; then `add_frame` / `save_episode`.

        `root` must be missing, empty, or hold a dataset that never committed an episode (one
        created and then interrupted or finalized empty), which is replaced.
        """
        from robokit.data.recovery import clear_uncommitted

        root = Path(root)
        if root.exists() and any(root.iterdir()) and not clear_uncommitted(root):
            raise FileExistsError(f"{root} exists and is not empty; use RobotDataset.resume({str(root)!r}) to add episodes")
        meta = DatasetMeta.create(
            root, fps, features, robot_type=robot_type, use_videos=use_videos, chunks_size=chunks_size,
            data_files_size_in_mb=data_files_size_in_mb, video_files_size_in_mb=video_files_size_in_mb,
        )
        meta.write_info()
        video = VideoSettings(codec=video_codec, g=video_gop, crf=video_crf, preset=video_preset)
        return cls._for_writing(meta, video)

    @classmethod
    def resume(cls, root: str | Path, video_codec: str = "av1", video_crf: int | None = 30,
               video_gop: int | None = 2, video_preset: int | str | None = None) -> RobotDataset:
        """Reopen a dataset to append episodes, first repairing what an interrupted run left behind."""
        from robokit.data.meta import INFO_PATH
        from robokit.data.recovery import repair

        if Path(root).is_dir() and not (Path(root) / INFO_PATH).exists():
            raise DatasetNotFoundError(
                f"{root} has no {INFO_PATH}: no dataset was started there (or a run stopped inside create "
                "before writing it), so there is nothing to resume; create it (record without --resume)"
            )
        repair(Path(root))
        meta = DatasetMeta.load(root)
        if meta.version != "v3.0":
            raise DatasetError(f"{root} is in the {meta.version} layout; convert it first: robokit dataset convert SRC DST")
        video = VideoSettings(codec=video_codec, g=video_gop, crf=video_crf, preset=video_preset)
        return cls._for_writing(meta, video)

    @classmethod
    def _for_writing(cls, meta: DatasetMeta, video: VideoSettings) -> RobotDataset:
        self = cls.__new__(cls)
        torch.utils.data.Dataset.__init__(self)
        self.repo_id, self.meta, self.root = None, meta, meta.root
        self.tolerance_s, self.image_transforms, self._transform_takes_generator = 1e-4, None, False
        self.return_uint8, self.video_backend, self.seed, self.frame_cache = False, None, None, False
        self.delta_timestamps, self._deltas, self._requested_episodes, self._loaded_for = None, {}, None, None
        self.writer = DatasetWriter(meta, video)
        return self

    def _require_writer(self) -> DatasetWriter:
        if self.writer is None:
            raise RuntimeError("this dataset was opened for reading; use RobotDataset.create(...) or RobotDataset.resume(root) to record")
        return self.writer

    def add_frame(self, frame: dict[str, Any]) -> None:
        """Add one frame `{feature: value, ..., "task": str}` to the current episode."""
        self._require_writer().add_frame(frame)

    def save_episode(self, wait: bool = True) -> int:
        """Write the current episode to disk (see DatasetWriter.save_episode); returns its index."""
        return self._require_writer().save_episode(wait=wait)

    def clear_episode_buffer(self) -> None:
        self._require_writer().clear_episode_buffer()

    def finalize(self) -> None:
        """Wait for background encoding and commits; the dataset is then complete on disk."""
        if self.writer is not None:
            self.writer.finalize()

    @property
    def episode_buffer_size(self) -> int:
        return self.writer.buffer.size if self.writer else 0

    def push_to_hub(self, repo_id: str, private: bool = False, revision: str | None = None, token: str | None = None) -> str:
        """Upload the finalized dataset to the hub; returns the repo URL."""
        from robokit.data import hub

        if self.writer is not None:
            self.writer.finalize()
        return hub.push(self.root, repo_id, private=private, revision=revision, token=token)

    # ------------------------------------------------------------------ reading
    def _load(self) -> None:
        """Load the tabular columns of the selected episodes into memory (numpy)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        meta = self.meta
        eps = meta.episodes
        all_indices = eps.column("episode_index").astype(np.int64) if len(eps) else np.zeros(0, np.int64)
        if self._requested_episodes is None:
            selected = all_indices
        else:
            missing = sorted(set(self._requested_episodes) - set(all_indices.tolist()))
            if missing:
                raise KeyError(f"episodes {missing} are not in {self.root} (it has episodes 0..{len(all_indices) - 1})")
            selected = np.array(sorted(set(self._requested_episodes)), dtype=np.int64)
        self.episodes = selected.tolist()
        rows = np.array([eps.row_of(int(e)) for e in selected], dtype=np.int64)
        lengths = eps.column("length")[rows].astype(np.int64) if len(rows) else np.zeros(0, np.int64)

        columns = [k for k, v in meta.features.items() if v["dtype"] != "video"]
        for key in meta.video_keys:
            _check_video_info(key, meta.features[key], self.root / INFO_PATH)
        tables = []
        files: dict[Path, list[int]] = {}
        for ep in selected.tolist():
            files.setdefault(meta.data_file(ep), []).append(ep)
        for path, file_eps in files.items():
            table = read_parquet(path, columns=[c for c in columns if c in _parquet_columns(path)])
            for key in table.column_names:
                problem = stored_shape_problem(table.schema.field(key).type, meta.features[key])
                if problem:
                    raise DatasetError(
                        f"{path}: column {key!r} {problem}, but {self.root / INFO_PATH} declares {key!r} as "
                        f"{meta.features[key]['dtype']} with shape {list(meta.features[key]['shape'])}"
                    )
            if len(file_eps) != len(np.unique(table.column("episode_index").to_numpy())):
                table = table.filter(pc.is_in(table.column("episode_index"), pa.array(file_eps, pa.int64())))
            tables.append(table)
        table = pa.concat_tables(tables) if len(tables) > 1 else (tables[0] if tables else None)
        n = int(lengths.sum())
        if table is not None and table.num_rows != n:
            counts = dict(zip(*np.unique(table.column("episode_index").to_numpy(), return_counts=True)))
            bad = [(e, int(counts.get(e, 0)), int(l)) for e, l in zip(selected.tolist(), lengths.tolist()) if counts.get(e, 0) != l]
            e, got, want = bad[0]
            raise DatasetError(f"episode {e} has {got} rows in {meta.data_file(e)}, but meta/episodes says {want}")
        self._columns: dict[str, Any] = {}
        for key in columns:
            if table is None or key not in table.column_names:
                continue
            self._columns[key] = _column_to_numpy(table.column(key), meta.features[key], key, self.root)
        # Per-position episode bounds, for clamping windows.
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else lengths
        self._ep_row = np.repeat(np.arange(len(selected)), lengths)
        self._ep_start = starts
        self._ep_end = starts + lengths
        self._video_files = {
            key: [str(meta.video_file(ep, key)) for ep in selected.tolist()] for key in meta.video_keys
        }
        for key, paths in self._video_files.items():
            for path in sorted(set(paths)):
                if not Path(path).is_file():
                    eps_in = [e for e, p in zip(self.episodes, paths) if p == path]
                    raise DatasetError(f"video file {path} is missing; meta/episodes places camera {key!r} of "
                                       f"episodes {eps_in[:10]}{' ...' if len(eps_in) > 10 else ''} in it")
        self._video_from = {
            key: np.array([meta.video_from_timestamp(ep, key) for ep in selected.tolist()], dtype=np.float64)
            for key in meta.video_keys
        }
        self._num_frames = n
        self._loaded_for = meta.total_episodes
        self._frame_cache = None
        if self.frame_cache and meta.camera_keys and n:
            from robokit.data.frame_cache import FrameCache

            size = self.frame_cache if isinstance(self.frame_cache, tuple) else None
            self._frame_cache = FrameCache.open_or_build(self, size=size)

    def _refresh(self) -> None:
        if self.writer is not None:
            self.writer.wait()
            if self._loaded_for != self.meta.total_episodes:
                self._load()

    @property
    def num_frames(self) -> int:
        self._refresh()
        return self._num_frames

    @property
    def num_episodes(self) -> int:
        if self.writer is not None:
            return self.writer.num_episodes
        return len(self.episodes)

    @property
    def episode_ranges(self) -> list[tuple[int, int]]:
        """(start, end) positions in this dataset (end exclusive) of each loaded episode, in order."""
        self._refresh()
        return list(zip(self._ep_start.tolist(), self._ep_end.tolist()))

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict]:
        return self.meta.features

    @property
    def camera_keys(self) -> list[str]:
        return self.meta.camera_keys

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, idx: int) -> dict[str, Any]:
        self._refresh()
        if not isinstance(idx, (int, np.integer)) or not -self._num_frames <= idx < self._num_frames:
            raise IndexError(f"index {idx} out of range for a dataset of {self._num_frames} frames")
        idx = int(idx) % self._num_frames
        ep_row = int(self._ep_row[idx])
        start, end = int(self._ep_start[ep_row]), int(self._ep_end[ep_row])
        item: dict[str, Any] = {}
        for key, values in self._columns.items():
            dtype = self.meta.features[key]["dtype"]
            if dtype in ("image", "string"):
                continue
            if key in self._deltas:
                positions, pad = window(idx, self._deltas[key], start, end)
                item[key] = torch.from_numpy(values[positions])
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
            else:
                item[key] = torch.from_numpy(np.asarray(values[idx]))
        for key in self.meta.camera_keys:
            if key in self._deltas:
                positions, pad = window(idx, self._deltas[key], start, end)
                item[key] = self._frames(key, positions, ep_row)
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
            else:
                item[key] = self._frames(key, np.array([idx]), ep_row)[0]
        for key, values in self._columns.items():
            if self.meta.features[key]["dtype"] == "string":
                item[key] = values[idx]
        item["task"] = self.meta.task_list[int(self._columns["task_index"][idx])]
        return item

    def _frames(self, key: str, positions: np.ndarray, ep_row: int) -> torch.Tensor:
        """Camera frames at dataset positions (same episode) -> (T, C, H, W), float [0, 1] or uint8."""
        if self._frame_cache is not None:
            frames = self._frame_cache.frames_at(key, self._columns["index"][positions])
        elif self.meta.features[key]["dtype"] == "video":
            from robokit.data.video_decode import decode_frames

            times = self._video_from[key][ep_row] + self._columns["timestamp"][positions].astype(np.float64)
            frames = decode_frames(self._video_files[key][ep_row], times.tolist(), self.tolerance_s, backend=self.video_backend)
        else:
            from robokit.data.images import decode_png

            blobs = self._columns[key]
            frames = torch.from_numpy(np.stack([decode_png(blobs[int(p)], key) for p in positions])).permute(0, 3, 1, 2)
        hwc = (int(frames.shape[2]), int(frames.shape[3]), int(frames.shape[1]))  # frames: (T, C, H, W)
        if hwc != self._camera_shape(key):
            source = self._video_files[key][ep_row] if key in self._video_files else self.meta.data_file(self.episodes[ep_row])
            raise DatasetError(
                f"{source}: {key!r} frames decode to (height, width, channels) = {hwc}, but "
                f"{self.root / INFO_PATH} declares shape {list(self.meta.features[key]['shape'])}"
            )
        # Decoders hand out channels-last views; one contiguous uint8 copy makes the float
        # conversion a plain streaming pass (3x faster than converting the strided view).
        frames = frames.contiguous()
        if self.return_uint8 and self.image_transforms is None:
            return frames
        frames = frames.to(torch.float32).mul_(1 / 255)
        if self.image_transforms is not None:
            frames = self._augment(frames, int(positions[-1]))
            if self.return_uint8:
                frames = frames.mul(255).round_().to(torch.uint8)
        return frames

    def _camera_shape(self, key: str) -> tuple[int, ...]:
        """The declared (H, W, C) of a camera, with the frame cache's resize applied."""
        h, w, c = (int(d) for d in self.meta.features[key]["shape"])
        if isinstance(self.frame_cache, tuple) and self._frame_cache is not None:
            h, w = self.frame_cache
        return (h, w, c)

    def _augment(self, frames: torch.Tensor, position: int) -> torch.Tensor:
        """One augmentation for the whole window (T, C, H, W), seeded by the sample when `seed` is set."""
        if self._transform_takes_generator and self.seed is not None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + position)
            return self.image_transforms(frames, generator=generator)
        return self.image_transforms(frames)

    def __repr__(self) -> str:
        return (
            f"RobotDataset(root={str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames}, "
            f"fps={self.fps}, robot_type={self.meta.robot_type!r}, cameras={self.camera_keys})"
        )

    def __getstate__(self):
        if self.writer is not None:
            raise TypeError("a dataset being recorded cannot be sent to DataLoader workers; finalize it and reopen it for reading")
        return self.__dict__


def _check_video_info(key: str, spec: dict, info_path: Path) -> None:
    """A video feature's declared shape must be what its recorded `info` says the video holds."""
    info = spec.get("info") or {}
    recorded = [info.get("video.height"), info.get("video.width"), info.get("video.channels")]
    declared = [int(d) for d in spec["shape"]]
    if all(isinstance(v, int) for v in recorded) and recorded != declared:
        raise DatasetError(
            f"{info_path}: video feature {key!r} declares shape {declared} (height, width, channels), but its "
            f"info (from the video files) says {recorded}; the declared shape was changed or is corrupt"
        )


def _accepts_generator(fn: Callable | None) -> bool:
    if fn is None:
        return False
    try:
        return "generator" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _parquet_columns(path: Path) -> set[str]:
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(path).names)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"cannot read parquet file {path} ({e}); the file may be truncated or corrupt") from e


def _column_to_numpy(column, spec: dict, key: str, root: Path):
    """A parquet column -> a numpy array shaped (N, *shape) (or (N,) for shape [1]); images stay bytes."""
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    dtype = spec["dtype"]
    if dtype == "image":
        return column.field("bytes").to_pylist() if pa.types.is_struct(column.type) else column.to_pylist()
    if dtype == "string":
        return column.to_pylist()
    n = len(column)
    shape = list(spec["shape"])
    values = column
    while pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = values.flatten()
    # A writable copy: zero-copy arrow memory is read-only, which torch.from_numpy warns about.
    array = np.array(values.to_numpy(zero_copy_only=False), dtype=np.dtype(dtype))
    if shape == [1] and array.size == n:
        return array.reshape(n)
    if array.size != n * int(np.prod(shape)):
        raise DatasetError(
            f"{root / 'data'}: column {key!r} holds {array.size} values for {n} frames, but {root / INFO_PATH} "
            f"declares shape {shape} ({int(np.prod(shape))} values per frame)"
        )
    return array.reshape(n, *shape)
