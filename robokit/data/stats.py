"""Per-feature statistics of an episode dataset, as stored in `meta/stats.json` and the episodes parquet.

Every numeric feature gets `min, max, mean, std, count, q01, q10, q50, q90, q99`, shaped like the
feature; cameras get per-channel values shaped `(C, 1, 1)`, scaled to [0, 1]. The conventions are
LeRobot's (v3.0 datasets), checked against stats that LeRobot 0.4.4 wrote
(`tests/data/test_stats.py`):

- Quantiles come from a histogram of `NUM_QUANTILE_BINS` equal bins spanning
  `[min - 1e-10, max + 1e-10]` (edges in the data's float dtype, float64 for integers and bools),
  with linear interpolation inside the bin where the cumulative count reaches `q * count`. This is
  not `np.quantile`: the result can sit up to one bin width (`range / 5000`) away from it, and
  q01 of a feature whose first value already covers 1% is `min - 1e-10`.
- An episode of a single frame gets its value as every quantile.
- Images: frames are subsampled as LeRobot does (`image_sample_indices`: all frames up to 100,
  then `N ** 0.75` evenly spaced ones, at most 10,000) and strided down to about 150 pixels when
  a side is 300 or more (`image_downsample_step`). Stats are over the uint8 values of every pixel
  of the sampled frames, divided by 255. `count` is the episode's frame count N. A recorder
  that does not keep the frames can keep `pixel_counts(frame)` of each (6 KB, ~0.15 ms at
  480x640) and pass `PixelCounts`: same stats, same sampling. It may also pass a subsample of
  strided frames with `num_frames=N`; the stats are then those of that subsample.
- Dataset stats (`aggregate_stats`): count-weighted mean, pooled variance (within + between
  episodes), min of mins, max of maxes, summed count, and each quantile as the count-weighted
  mean of the episodes' quantiles (what LeRobot does; a weighted mean of quantiles is an
  estimate, not the quantile of the pooled data).

Deliberate differences from LeRobot 0.4.4 (see the module tests for the measured size):
- mean and std are computed in float64 (LeRobot accumulates float32 features in float32 and takes
  std as sqrt(E[x^2] - E[x]^2)), so they differ from LeRobot's by its float32 rounding: up to
  ~3e-7 relative for the mean and ~2e-6 for the std on the fixtures. (LeRobot computes the
  `timestamp` stats on float64 frame_index / fps; pass that to get them bit for bit.)
- Image std is the true per-channel standard deviation. LeRobot squares the uint8 pixels in
  uint8, which wraps around, and so writes std = 0 for every camera of every episode.
- LeRobot's image `count` is the number of *sampled* frames (min(N, 100) for N <= 500); here it is
  N, so that an episode's images weigh as much as its other features when aggregating.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

STAT_KEYS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
NUM_QUANTILE_BINS = 5000
HISTOGRAM_MARGIN = 1e-10
"""Padding of the histogram range beyond min and max (LeRobot's value)."""

IMAGE_DTYPES = ("image", "video")
IMAGE_MIN_SAMPLES = 100
IMAGE_MAX_SAMPLES = 10_000
IMAGE_SAMPLE_POWER = 0.75
IMAGE_TARGET_SIZE = 150
IMAGE_DOWNSAMPLE_THRESHOLD = 300

_STATS_PREFIX = "stats/"

Stats = dict[str, dict[str, np.ndarray]]


# ---------------------------------------------------------------------------------------------
# Sampling of camera frames


def image_sample_indices(num_frames: int) -> np.ndarray:
    """Indices of the frames whose pixels enter an episode's image stats (LeRobot's rule)."""
    if num_frames <= 0:
        raise ValueError(f"image_sample_indices: num_frames is {num_frames}, expected > 0")
    lower = min(IMAGE_MIN_SAMPLES, num_frames)
    num_samples = max(lower, min(int(num_frames**IMAGE_SAMPLE_POWER), IMAGE_MAX_SAMPLES))
    return np.round(np.linspace(0, num_frames - 1, num_samples)).astype(np.int64)


def image_downsample_step(height: int, width: int) -> int:
    """Pixel stride applied to both axes before image stats: 1 below 300 px, else ~150 px left."""
    longest = max(height, width)
    if longest < IMAGE_DOWNSAMPLE_THRESHOLD:
        return 1
    return max(1, int(longest / IMAGE_TARGET_SIZE))


# ---------------------------------------------------------------------------------------------
# Histogram quantiles


def _histogram_edges(low: np.ndarray, high: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(D, B + 1) bin edges spanning [low - margin, high + margin] in `dtype` (float32 or float64)."""
    scalar = dtype.type
    edges = [
        np.linspace(
            scalar(lo) - scalar(HISTOGRAM_MARGIN),
            scalar(hi) + scalar(HISTOGRAM_MARGIN),
            NUM_QUANTILE_BINS + 1,
        )
        for lo, hi in zip(low, high, strict=True)
    ]
    return np.stack(edges).astype(dtype, copy=False)


def _histogram_counts(values: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(D, B) counts of `values` (M, D) in the bins of `edges`; a bin holds [e_i, e_i+1), the last
    one also its right edge (numpy's histogram convention)."""
    num_dims = values.shape[1]
    counts = np.zeros((num_dims, NUM_QUANTILE_BINS), dtype=np.float64)
    for d in range(num_dims):
        bins = np.searchsorted(edges[d], values[:, d], side="right") - 1
        bins = np.minimum(bins, NUM_QUANTILE_BINS - 1)  # a value equal to the last edge
        inside = bins >= 0
        w = None if weights is None else weights[inside]
        counts[d] = np.bincount(bins[inside], weights=w, minlength=NUM_QUANTILE_BINS)
    return counts


def _histogram_quantiles(counts: np.ndarray, edges: np.ndarray, total: int) -> dict[str, np.ndarray]:
    """Quantiles from histograms: the bin where the cumulative count reaches q * total, linearly
    interpolated inside it. counts (D, B) float64, edges (D, B + 1) -> {qkey: (D,) float64}."""
    cumulative = np.cumsum(counts, axis=1)  # (D, B)
    rows = np.arange(counts.shape[0])
    width = (edges[:, 1:] - edges[:, :-1]).astype(np.float64)  # in the edges' dtype, then widened
    out = {}
    for key, q in QUANTILES.items():
        target = q * total
        idx = np.sum(cumulative < target, axis=1)  # first bin whose cumulative count >= target
        safe = np.clip(idx, 1, NUM_QUANTILE_BINS - 1)
        before = cumulative[rows, safe - 1]
        in_bin = cumulative[rows, safe] - before
        fraction = (target - before) / np.where(in_bin == 0, 1.0, in_bin)
        interpolated = edges[rows, safe].astype(np.float64) + fraction * width[rows, safe]
        value = np.where(in_bin == 0, edges[rows, safe].astype(np.float64), interpolated)
        value = np.where(idx == 0, edges[:, 0].astype(np.float64), value)
        value = np.where(idx >= NUM_QUANTILE_BINS, edges[:, -1].astype(np.float64), value)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# One feature of one episode


def _edge_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype(np.float64)


def _vector_stats(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of (N, D) numeric values over axis 0, each (D,)."""
    if values.dtype == np.bool_:
        numeric = values.astype(np.float64)
    elif np.issubdtype(values.dtype, np.number):
        numeric = values
    else:
        raise ValueError(
            f"stats: feature {name!r} has dtype {values.dtype}, expected a numeric or bool array"
        )
    if np.issubdtype(numeric.dtype, np.floating) and not np.all(np.isfinite(numeric)):
        bad = np.argwhere(~np.isfinite(numeric))[0]
        raise ValueError(
            f"stats: feature {name!r} has a non-finite value at frame {bad[0]}, dim {bad[1]}; "
            "stats need finite values"
        )
    num = values.shape[0]
    low, high = values.min(axis=0), values.max(axis=0)
    as_float = numeric.astype(np.float64, copy=False)
    mean = as_float.mean(axis=0)
    stats = {
        "min": low if not np.issubdtype(values.dtype, np.floating) else low.astype(np.float64),
        "max": high if not np.issubdtype(values.dtype, np.floating) else high.astype(np.float64),
        "mean": mean,
        "std": as_float.std(axis=0),
        "count": np.array([num], dtype=np.int64),
    }
    if num < 2:
        stats.update({key: mean.copy() for key in QUANTILES})
        return stats
    edge_dtype = _edge_dtype(numeric.dtype)
    edges = _histogram_edges(numeric.min(axis=0), numeric.max(axis=0), edge_dtype)
    counts = _histogram_counts(numeric.astype(edge_dtype, copy=False), edges)
    stats.update(_histogram_quantiles(counts, edges, num))
    return stats


def pixel_counts(frame: np.ndarray) -> np.ndarray:
    """(C, 256) int64 counts of each uint8 value per channel of one (H, W, C) frame, over the pixels
    that enter image stats (strided by `image_downsample_step`). ~0.15 ms for 480x640x3, so a
    recorder can count every frame as it arrives and keep 6 KB per frame instead of the frame."""
    if frame.dtype != np.uint8 or frame.ndim != 3:
        raise ValueError(f"pixel_counts: frame is {frame.dtype} {frame.shape}, expected uint8 (H, W, C)")
    step = image_downsample_step(frame.shape[0], frame.shape[1])
    pixels = frame[::step, ::step]
    return np.stack([np.bincount(pixels[..., c].ravel(), minlength=256) for c in range(frame.shape[2])])


@dataclass(frozen=True)
class PixelCounts:
    """A camera's pixel_counts() of every frame of an episode, (N, C, 256): pass it in place of the
    frames to compute_episode_stats; the stats are then those of the frames themselves."""

    counts: np.ndarray

    def __post_init__(self) -> None:
        c = np.asarray(self.counts)
        if c.ndim != 3 or c.shape[0] == 0 or c.shape[2] != 256 or not np.issubdtype(c.dtype, np.integer):
            raise ValueError(
                f"PixelCounts: counts are {c.dtype} {c.shape}, expected integer (N, C, 256) with N > 0"
            )


def _image_stats(
    name: str, frames: np.ndarray | Sequence[np.ndarray], num_frames: int | None
) -> dict[str, np.ndarray]:
    """Per-channel stats of frames (H, W, C) on sampled, strided pixels; each (C, 1, 1) in [0, 1]."""
    if isinstance(frames, PixelCounts):
        counts = np.asarray(frames.counts, dtype=np.int64)
        stats = _stats_from_pixel_counts(counts[image_sample_indices(len(counts))].sum(axis=0))
        channels = counts.shape[1]
    else:
        channels = frames[0].shape[-1]
        indices = image_sample_indices(len(frames))
        dtype = frames[0].dtype
        if dtype == np.uint8:
            stats = _stats_from_pixel_counts(sum(pixel_counts(frames[i]) for i in indices))
        elif np.issubdtype(dtype, np.floating):
            # Float frames are taken to be in [0, 1] already (no 255 scaling).
            step = image_downsample_step(*frames[0].shape[:2])
            pixels = np.stack([frames[i][::step, ::step] for i in indices]).reshape(-1, channels)
            stats = _vector_stats(name, pixels)
        else:
            raise ValueError(f"stats: camera {name!r} has dtype {dtype}, expected uint8 (or float in [0, 1])")
    out = {key: np.asarray(value, dtype=np.float64).reshape(channels, 1, 1) for key, value in stats.items()}
    count = len(frames.counts) if isinstance(frames, PixelCounts) else len(frames)
    out["count"] = np.array([count if num_frames is None else num_frames], dtype=np.int64)
    return out


def _stats_from_pixel_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of uint8 pixels given as (C, 256) value counts, scaled by 1/255. Equal to the
    histogram method run on every pixel."""
    channels = counts.shape[0]
    total = int(counts[0].sum())
    levels = np.arange(256, dtype=np.float64)
    mean = counts @ levels / total  # exact integer sums, like a float64 mean of the pixels
    var = np.maximum(counts @ levels**2 / total - mean**2, 0.0)
    present = counts > 0
    low = np.argmax(present, axis=1).astype(np.float64)
    high = (255 - np.argmax(present[:, ::-1], axis=1)).astype(np.float64)
    stats = {"min": low, "max": high, "mean": mean, "std": np.sqrt(var)}
    if total < 2:
        stats.update({key: mean.copy() for key in QUANTILES})
    else:
        edges = _histogram_edges(low, high, np.dtype(np.float64))
        hist = np.empty((channels, NUM_QUANTILE_BINS), dtype=np.float64)
        for c in range(channels):
            present_levels = np.flatnonzero(counts[c])
            hist[c] = _histogram_counts(
                levels[present_levels, None], edges[c : c + 1], counts[c, present_levels].astype(np.float64)
            )[0]
        stats.update(_histogram_quantiles(hist, edges, total))
    return {key: value / 255.0 for key, value in stats.items()}


def _feature_shape(name: str, feature: Mapping) -> tuple[int, ...]:
    shape = feature.get("shape")
    if shape is None:
        return (1,)
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"stats: feature {name!r} has shape {shape!r}, expected a list of integers"
        ) from None


def _declared_hwc(key: str, declared: tuple[int, ...]) -> tuple[int, int, int]:
    """A camera's declared (H, W, C); features may declare (H, W, C) or (C, H, W)."""
    if len(declared) == 3 and declared[-1] <= 4:
        return declared
    if len(declared) == 3 and declared[0] <= 4:
        return declared[1], declared[2], declared[0]
    raise ValueError(f"compute_episode_stats: camera {key!r} declares shape {declared}, expected (H, W, C)")


def _check_frames(key: str, frames, declared: tuple[int, ...]) -> None:
    height, width, channels = _declared_hwc(key, declared)
    if isinstance(frames, PixelCounts):
        if frames.counts.shape[1] != channels:
            raise ValueError(
                f"compute_episode_stats: camera {key!r} pixel counts have {frames.counts.shape[1]} "
                f"channels, the feature declares {channels}"
            )
        return
    if isinstance(frames, np.ndarray) and frames.ndim != 4:
        raise ValueError(
            f"compute_episode_stats: camera {key!r} has shape {frames.shape}, expected (N, H, W, C)"
        )
    if len(frames) == 0:
        raise ValueError(f"compute_episode_stats: camera {key!r} has no frames, expected N > 0")
    shape = tuple(np.shape(frames[0]))
    # Frames may be spatially strided already (a recorder keeping small copies for stats).
    if len(shape) != 3 or shape[2] != channels or shape[0] > height or shape[1] > width:
        raise ValueError(
            f"compute_episode_stats: camera {key!r} frames have shape {shape}, expected "
            f"(H, W, C) = ({height}, {width}, {channels}) as declared (or smaller H, W)"
        )
    if not isinstance(frames, np.ndarray):
        wrong = next((i for i, f in enumerate(frames) if np.shape(f) != shape), None)
        if wrong is not None:
            raise ValueError(
                f"compute_episode_stats: camera {key!r} frame {wrong} has shape "
                f"{np.shape(frames[wrong])}, frame 0 has {shape}"
            )


def compute_episode_stats(
    episode: Mapping[str, np.ndarray | Sequence[np.ndarray] | PixelCounts],
    features: Mapping[str, Mapping],
    num_frames: int | None = None,
) -> Stats:
    """Stats of every numeric and camera feature of one episode.

    `episode[key]` is the (N, *shape) array of that feature. A camera ("image"/"video") is given
    as its (N, H, W, C) uint8 frames, a list of such frames (not stacked here), or the
    `PixelCounts` of all its frames (exactly the same stats, from 6 KB per frame).
    Features of dtype "string" are skipped, as are declared features absent from `episode`.

    num_frames: the episode's frame count, when the camera frames given are only a subsample of
    them (e.g. every 5th frame kept while recording); it becomes the cameras' `count`.

    Returns {feature: {stat: array}} with the keys of STAT_KEYS.
    """
    unknown = [key for key in episode if key not in features]
    if unknown:
        raise ValueError(
            f"compute_episode_stats: {unknown} are not declared features (declared: {sorted(features)})"
        )
    if num_frames is not None and num_frames <= 0:
        raise ValueError(f"compute_episode_stats: num_frames is {num_frames}, expected > 0")
    result: Stats = {}
    for key, values in episode.items():
        feature = features[key]
        dtype = feature.get("dtype")
        if dtype == "string":
            continue
        if dtype in IMAGE_DTYPES:
            frames = values if isinstance(values, (list, tuple, PixelCounts)) else np.asarray(values)
            _check_frames(key, frames, _feature_shape(key, feature))
            result[key] = _image_stats(key, frames, num_frames)
            continue
        array = np.asarray(values)
        shape = _feature_shape(key, feature)
        size = math.prod(shape)
        if array.ndim == 0 or array.shape[0] == 0 or math.prod(array.shape[1:]) != size:
            raise ValueError(
                f"compute_episode_stats: {key!r} has shape {array.shape}, "
                f"expected (N, {', '.join(map(str, shape))}) with N > 0"
            )
        stats = _vector_stats(key, array.reshape(array.shape[0], size))
        result[key] = {k: v if k == "count" else v.reshape(shape) for k, v in stats.items()}
    return result


# ---------------------------------------------------------------------------------------------
# Dataset stats from episode stats


def _aggregate_feature(name: str, stats_list: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    for i, stats in enumerate(stats_list):
        missing = [k for k in ("min", "max", "mean", "std", "count") if k not in stats]
        if missing:
            raise ValueError(f"aggregate_stats: episode stats #{i} of {name!r} lack {missing}")
    counts = np.stack([np.asarray(s["count"], dtype=np.int64).reshape(-1)[0] for s in stats_list])  # (E,)
    total = int(counts.sum())
    if total <= 0:
        raise ValueError(f"aggregate_stats: feature {name!r} has a total count of {total}, expected > 0")
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in stats_list])  # (E, *shape)
    weights = counts.reshape((-1,) + (1,) * (means.ndim - 1)).astype(np.float64)
    mean = (means * weights).sum(axis=0) / total
    variances = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in stats_list])
    variance = ((variances + (means - mean) ** 2) * weights).sum(axis=0) / total
    out = {
        "min": np.min(np.stack([np.asarray(s["min"]) for s in stats_list]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in stats_list]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([total], dtype=np.int64),
    }
    for key in QUANTILES:
        if all(key in s for s in stats_list):
            values = np.stack([np.asarray(s[key], dtype=np.float64) for s in stats_list])
            out[key] = (values * weights).sum(axis=0) / total
    return out


def aggregate_stats(stats_list: Sequence[Mapping[str, Mapping[str, np.ndarray]]]) -> Stats:
    """Dataset stats from per-episode (or per-dataset) stats; features are the union of all keys.

    mean: count-weighted; std: pooled (within- plus between-episode variance); min/max: of the
    mins/maxes; count: summed; quantiles: count-weighted mean of the episodes' quantiles
    (LeRobot's rule, so that robokit reproduces LeRobot's stats.json).
    """
    if not stats_list:
        raise ValueError("aggregate_stats: stats_list is empty, expected at least one episode's stats")
    names = list(dict.fromkeys(name for stats in stats_list for name in stats))
    return {name: _aggregate_feature(name, [s[name] for s in stats_list if name in s]) for name in names}


# ---------------------------------------------------------------------------------------------
# Serialization


def stats_to_json(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict:
    """{feature: {stat: nested list}} ready for json.dump."""
    return {
        name: {key: np.asarray(value).tolist() for key, value in ft.items()} for name, ft in stats.items()
    }


def _to_array(value) -> np.ndarray:
    """A stats value read back from JSON or parquet (lists, or pandas' object arrays of arrays)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return np.stack([_to_array(v) for v in value]) if len(value) else np.array([])
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray)):
        return np.stack([_to_array(v) for v in value])
    return np.asarray(value)


def stats_from_json(data: Mapping[str, Mapping]) -> Stats:
    """Inverse of stats_to_json: {feature: {stat: np.ndarray}} (bools, int64 or float64 as written)."""
    out: Stats = {}
    for name, ft in data.items():
        if not isinstance(ft, Mapping):
            raise TypeError(
                f"stats_from_json: entry {name!r} is {type(ft).__name__}, expected an object of stats"
            )
        out[name] = {key: _to_array(value) for key, value in ft.items()}
        if "count" in out[name]:
            out[name]["count"] = out[name]["count"].astype(np.int64).reshape(-1)
    return out


def flatten_stats(stats: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, list]:
    """{"stats/<feature>/<stat>": nested list}: the columns of the episodes parquet."""
    return {
        f"{_STATS_PREFIX}{name}/{key}": np.asarray(value).tolist()
        for name, ft in stats.items()
        for key, value in ft.items()
    }


def unflatten_stats(row: Mapping[str, object]) -> Stats:
    """Inverse of flatten_stats for one episodes-parquet row; other columns and nulls are ignored."""
    out: Stats = {}
    for column, value in row.items():
        if not column.startswith(_STATS_PREFIX) or value is None:
            continue
        name, sep, key = column[len(_STATS_PREFIX) :].rpartition("/")
        if not sep or not name:
            raise ValueError(
                f"unflatten_stats: column {column!r} is not of the form 'stats/<feature>/<stat>'"
            )
        out.setdefault(name, {})[key] = _to_array(value)
    for ft in out.values():
        if "count" in ft:
            ft["count"] = ft["count"].astype(np.int64).reshape(-1)
    return out
