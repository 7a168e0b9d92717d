"""Episode and dataset stats: numpy parity, LeRobot's conventions on its own fixtures, serialization."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robokit.data.stats import (
    NUM_QUANTILE_BINS,
    STAT_KEYS,
    PixelCounts,
    aggregate_stats,
    compute_episode_stats,
    flatten_stats,
    image_downsample_step,
    image_sample_indices,
    pixel_counts,
    stats_from_json,
    stats_to_json,
    unflatten_stats,
)

QUANTILE_KEYS = ("q01", "q10", "q50", "q90", "q99")


def make_features(state_dim: int = 3) -> dict:
    return {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "task": {"dtype": "string", "shape": [1], "names": None},
        "observation.images.cam": {
            "dtype": "video",
            "shape": [24, 32, 3],
            "names": ["height", "width", "channels"],
        },
    }


def make_episode(n: int, seed: int, state_dim: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": (rng.normal(size=(n, state_dim)) * [1, 10, 100] + [0, 5, -50]).astype(
            np.float32
        ),
        "next.done": (np.arange(n) == n - 1)[:, None],
        "frame_index": np.arange(n, dtype=np.int64),
        "observation.images.cam": rng.integers(20, 230, size=(n, 24, 32, 3), dtype=np.uint8),
    }


@pytest.fixture(scope="module")
def fixtures(lerobot_fixtures) -> Path:
    return lerobot_fixtures


# --- basics


def test_vector_stats_match_numpy():
    ep = make_episode(200, seed=0)
    stats = compute_episode_stats(ep, make_features())
    x = ep["observation.state"].astype(np.float64)
    s = stats["observation.state"]
    assert set(s) == set(STAT_KEYS)
    np.testing.assert_array_equal(s["min"], x.min(axis=0))
    np.testing.assert_array_equal(s["max"], x.max(axis=0))
    np.testing.assert_allclose(s["mean"], x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(s["std"], x.std(axis=0), rtol=1e-12)
    assert s["count"].tolist() == [200] and s["count"].dtype == np.int64
    assert all(s[k].shape == (3,) and s[k].dtype == np.float64 for k in STAT_KEYS if k != "count")
    # Histogram quantiles: inside the bin that holds the ceil(q*N)-th smallest value.
    width = (x.max(axis=0) - x.min(axis=0)) / NUM_QUANTILE_BINS
    for key in QUANTILE_KEYS:
        exact = np.quantile(x, int(key[1:]) / 100, axis=0, method="inverted_cdf")
        assert np.all(np.abs(s[key] - exact) <= width * 1.001), key
    assert np.all(np.diff(np.stack([s[k] for k in QUANTILE_KEYS]), axis=0) >= 0)


def test_int_bool_string_features_follow_lerobot_types():
    episode = make_episode(10, seed=1) | {"task": np.array(["pick"] * 10)}
    stats = compute_episode_stats(episode, make_features())
    assert "task" not in stats
    fi, done = stats["frame_index"], stats["next.done"]
    assert fi["min"].dtype == np.int64 and fi["min"].tolist() == [0] and fi["max"].tolist() == [9]
    assert fi["mean"].dtype == np.float64 and fi["mean"].tolist() == [4.5]
    assert (
        done["min"].dtype == np.bool_ and done["min"].tolist() == [False] and done["max"].tolist() == [True]
    )
    assert done["mean"].tolist() == [0.1] and done["std"][0] == pytest.approx(0.3)


def test_single_frame_episode_gives_its_value_as_every_quantile():
    stats = compute_episode_stats(make_episode(1, seed=2), make_features())
    s = stats["observation.state"]
    for key in QUANTILE_KEYS:
        np.testing.assert_array_equal(s[key], s["mean"])
    assert s["std"].tolist() == [0.0, 0.0, 0.0]


def test_image_stats_per_channel_scaled_to_unit_range():
    ep = make_episode(30, seed=3)
    s = compute_episode_stats(ep, make_features())["observation.images.cam"]
    pixels = ep["observation.images.cam"].reshape(-1, 3).astype(np.float64) / 255  # all 30 frames sampled
    assert all(s[k].shape == (3, 1, 1) for k in STAT_KEYS if k != "count") and s["count"].tolist() == [30]
    np.testing.assert_allclose(s["mean"].ravel(), pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s["std"].ravel(), pixels.std(axis=0), rtol=1e-9)
    np.testing.assert_array_equal(s["min"].ravel(), pixels.min(axis=0))
    np.testing.assert_array_equal(s["max"].ravel(), pixels.max(axis=0))
    for key in QUANTILE_KEYS:
        exact = np.quantile(pixels, int(key[1:]) / 100, axis=0, method="inverted_cdf")
        assert np.all(np.abs(s[key].ravel() - exact) <= 1 / 255), key


def test_image_sampling_rule():
    assert image_sample_indices(20).tolist() == list(range(20))
    idx = image_sample_indices(150)
    assert len(idx) == 100 and idx[0] == 0 and idx[-1] == 149 and np.all(np.diff(idx) >= 1)
    assert len(image_sample_indices(1000)) == 177 and len(image_sample_indices(10**6)) == 10_000
    assert image_downsample_step(48, 64) == 1 and image_downsample_step(480, 640) == 4
    assert image_downsample_step(720, 1280) == 8 and image_downsample_step(299, 200) == 1


def _uint8_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel mean, std and inverted-CDF quantiles of every pixel, from value counts."""
    counts = np.stack([np.bincount(frames[..., c].ravel(), minlength=256) for c in range(frames.shape[-1])])
    levels = np.arange(256) / 255.0
    total = counts[0].sum()
    mean = counts @ levels / total
    out = {"mean": mean, "std": np.sqrt(counts @ levels**2 / total - mean**2)}
    for key in QUANTILE_KEYS:
        out[key] = levels[np.argmax(np.cumsum(counts, axis=1) >= int(key[1:]) / 100 * total, axis=1)]
    return out


def test_large_episode_subsampling_is_close_to_the_full_data():
    # 120 frames of 200x320: 100 frames sampled, every 2nd pixel of every 2nd row.
    n, h, w = 120, 200, 320
    yy, xx = np.mgrid[0:h, 0:w]
    t = np.arange(n)[:, None, None]
    frames = np.stack(
        [(xx[None] + 3 * t) % 256, (yy[None] * 0.7 + t) % 256, (xx[None] + yy[None]) // 3 % 256 + 0 * t], -1
    )
    frames = frames.astype(np.uint8)
    features = {"cam": {"dtype": "video", "shape": [h, w, 3]}}
    s = compute_episode_stats({"cam": frames}, features)["cam"]
    assert s["count"].tolist() == [n]
    full = _uint8_reference(frames)
    for key in ("mean", "std", *QUANTILE_KEYS):
        np.testing.assert_allclose(s[key].ravel(), full[key], atol=0.015, err_msg=key)
    # Exactly the stats of the sampled, strided pixels.
    sampled = _uint8_reference(frames[image_sample_indices(n), ::2, ::2])
    np.testing.assert_allclose(s["mean"].ravel(), sampled["mean"], rtol=1e-12)
    np.testing.assert_allclose(s["std"].ravel(), sampled["std"], rtol=1e-9)
    # The same stats from per-frame pixel counts (what a recorder keeps), and from a list of frames.
    counted = compute_episode_stats(
        {"cam": PixelCounts(np.stack([pixel_counts(f) for f in frames]))}, features
    )["cam"]
    listed = compute_episode_stats({"cam": list(frames)}, features)["cam"]
    for key in STAT_KEYS:
        np.testing.assert_array_equal(counted[key], s[key])
        np.testing.assert_array_equal(listed[key], s[key])
    # Frames already strided by a recorder, with the episode's true count.
    pre = compute_episode_stats({"cam": frames[::5, ::4, ::4]}, features, num_frames=n)["cam"]
    assert pre["count"].tolist() == [n]
    np.testing.assert_allclose(pre["mean"].ravel(), full["mean"], atol=0.015)


def test_bad_input_names_the_feature():
    features = make_features()
    with pytest.raises(ValueError, match=r"'observation.state' has shape \(5, 4\)"):
        compute_episode_stats({"observation.state": np.zeros((5, 4), np.float32)}, features)
    with pytest.raises(ValueError, match="'observation.nope'.*not declared"):
        compute_episode_stats({"observation.nope": np.zeros((5, 1))}, features)
    with pytest.raises(ValueError, match="'observation.images.cam' frames have shape \\(24, 32, 4\\)"):
        compute_episode_stats({"observation.images.cam": np.zeros((5, 24, 32, 4), np.uint8)}, features)
    bad = np.zeros((5, 3), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="'observation.state' has a non-finite value at frame 2, dim 1"):
        compute_episode_stats({"observation.state": bad}, features)
    with pytest.raises(ValueError, match="stats_list is empty"):
        aggregate_stats([])


# --- aggregation


def test_aggregate_equals_stats_of_the_concatenated_data():
    features = make_features()
    episodes = [make_episode(n, seed=i) for i, n in enumerate([7, 40, 1, 23])]
    agg = aggregate_stats([compute_episode_stats(ep, features) for ep in episodes])
    for key in ("observation.state", "frame_index", "next.done"):
        x = np.concatenate([ep[key] for ep in episodes]).astype(np.float64)
        np.testing.assert_allclose(agg[key]["mean"], x.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(agg[key]["std"], x.std(axis=0), rtol=1e-10)
        np.testing.assert_array_equal(agg[key]["min"].astype(np.float64), x.min(axis=0))
        np.testing.assert_array_equal(agg[key]["max"].astype(np.float64), x.max(axis=0))
        assert agg[key]["count"].tolist() == [71]
    assert agg["next.done"]["min"].dtype == np.bool_ and agg["frame_index"]["max"].dtype == np.int64
    pixels = np.concatenate([ep["observation.images.cam"] for ep in episodes]).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(agg["observation.images.cam"]["mean"].ravel(), pixels.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(agg["observation.images.cam"]["std"].ravel(), pixels.std(axis=0), rtol=1e-9)


def test_aggregate_quantiles_are_count_weighted_means():
    features = make_features()
    per_episode = [compute_episode_stats(make_episode(n, seed=i), features) for i, n in enumerate([5, 15])]
    agg = aggregate_stats(per_episode)
    for key in QUANTILE_KEYS:
        expected = (
            5 * per_episode[0]["observation.state"][key] + 15 * per_episode[1]["observation.state"][key]
        ) / 20
        np.testing.assert_allclose(agg["observation.state"][key], expected, rtol=1e-14)
    # Incremental aggregation (what a recorder does after each episode) gives the same result.
    three = per_episode + [compute_episode_stats(make_episode(9, seed=7), features)]
    step = aggregate_stats([aggregate_stats(three[:2]), three[2]])
    full = aggregate_stats(three)
    for key in STAT_KEYS:
        np.testing.assert_allclose(step["observation.state"][key], full["observation.state"][key], rtol=1e-12)


# --- LeRobot fixtures


def _fixture_episodes(fixtures: Path, name: str, groundtruth: str):
    info = json.loads((fixtures / name / "meta/info.json").read_text())
    rows = pq.read_table(fixtures / name / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    with np.load(fixtures / groundtruth) as npz:
        gt = dict(npz)  # an NpzFile decompresses an array again on every access
    for row in rows:
        mask = gt["episode_index"] == row["episode_index"]
        episode = {}
        for key, feature in info["features"].items():
            value = gt[key][mask]
            if feature["dtype"] in ("image", "video"):
                value = value.transpose(0, 2, 3, 1)  # ground truth is NCHW, cameras come as NHWC
            episode[key] = value
        # LeRobot computes timestamp stats on frame_index / fps as Python floats (float64).
        episode["timestamp"] = gt["frame_index"][mask] / info["fps"]
        yield info["features"], episode, row


@pytest.mark.parametrize(
    "name,groundtruth",
    [("v30_video_2cam", "groundtruth_video.npz"), ("v30_image_state", "v30_image_state.groundtruth.npz")],
)
def test_episode_stats_reproduce_lerobot_fixture(fixtures, name, groundtruth):
    for features, episode, row in _fixture_episodes(fixtures, name, groundtruth):
        ours, theirs = compute_episode_stats(episode, features), unflatten_stats(row)
        assert set(ours) == set(theirs)
        for key in theirs:
            a, b = ours[key], theirs[key]
            is_image = features[key]["dtype"] in ("image", "video")
            for stat in ("min", "max", "count", *QUANTILE_KEYS):
                # Same histogram, same edges: the quantiles are reproduced to the last bit or nearly.
                np.testing.assert_allclose(
                    a[stat].astype(np.float64),
                    b[stat].astype(np.float64),
                    rtol=1e-12,
                    atol=1e-15,
                    err_msg=f"{name} ep {row['episode_index']} {key} {stat}",
                )
                assert a[stat].shape == b[stat].shape and a[stat].dtype.kind == b[stat].dtype.kind
            # LeRobot accumulates float32 features in float32 (E[x^2] - E[x]^2); we use float64.
            np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-6, atol=1e-12, err_msg=f"{key} mean")
            if not is_image:
                np.testing.assert_allclose(a["std"], b["std"], rtol=5e-6, atol=1e-12, err_msg=f"{key} std")
            else:
                # LeRobot squares uint8 pixels in uint8 (wrap-around), so its image std is always 0.
                assert np.all(b["std"] == 0) and np.all(a["std"] > 0.05)
                pixels = episode[key].reshape(-1, 3) / 255.0
                np.testing.assert_allclose(a["std"].ravel(), pixels.std(axis=0), rtol=1e-9)


def test_fixture_std_difference_is_lerobots_float32_rounding(fixtures):
    # Justifies the rtol of 5e-6 above: LeRobot's float32 formula gives the fixture bit for bit.
    _, episode, row = next(_fixture_episodes(fixtures, "v30_video_2cam", "groundtruth_video.npz"))
    x = episode["observation.state"]
    assert x.dtype == np.float32
    mean = np.mean(x, axis=0)
    std32 = np.sqrt(np.maximum(0, np.mean(x**2, axis=0) - mean**2))
    np.testing.assert_array_equal(std32.astype(np.float64), row["stats/observation.state/std"])


@pytest.mark.parametrize("name", ["v30_video_2cam", "v30_image_state"])
def test_aggregate_of_fixture_episodes_reproduces_lerobot_stats_json(fixtures, name):
    rows = pq.read_table(fixtures / name / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    ours = aggregate_stats([unflatten_stats(row) for row in rows])
    theirs = stats_from_json(json.loads((fixtures / name / "meta/stats.json").read_text()))
    assert set(ours) == set(theirs)
    for key in theirs:
        for stat in STAT_KEYS:
            a, b = ours[key][stat], theirs[key][stat]
            assert a.shape == b.shape and a.dtype.kind == b.dtype.kind, (key, stat)
            # std: LeRobot squares its in-memory (float32) stds while aggregating -> ~1e-8 relative.
            np.testing.assert_allclose(
                a.astype(np.float64),
                b.astype(np.float64),
                rtol=1e-7 if stat == "std" else 1e-12,
                atol=1e-15,
                err_msg=f"{name} {key} {stat}",
            )


def test_flattened_stats_have_the_fixture_parquet_types(fixtures, tmp_path):
    features, episode, _ = next(_fixture_episodes(fixtures, "v30_video_2cam", "groundtruth_video.npz"))
    flat = flatten_stats(compute_episode_stats(episode, features))
    path = tmp_path / "episodes.parquet"
    pq.write_table(pa.Table.from_pylist([flat | {"episode_index": 0}]), path)
    ours = pq.read_schema(path)
    theirs = pq.read_schema(fixtures / "v30_video_2cam/meta/episodes/chunk-000/file-000.parquet")
    stat_columns = [name for name in theirs.names if name.startswith("stats/")]
    assert sorted(stat_columns) == sorted(flat)
    for column in stat_columns:
        assert ours.field(column).type == theirs.field(column).type, column


# --- serialization


def _assert_stats_equal(a, b):
    assert set(a) == set(b)
    for key in a:
        assert set(a[key]) == set(b[key])
        for stat in a[key]:
            assert a[key][stat].dtype.kind == b[key][stat].dtype.kind, (key, stat)
            np.testing.assert_array_equal(a[key][stat], b[key][stat])


def test_json_round_trip(tmp_path):
    features = make_features()
    stats = aggregate_stats([compute_episode_stats(make_episode(n, seed=n), features) for n in (4, 9)])
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(stats_to_json(stats), indent=4))
    back = stats_from_json(json.loads(path.read_text()))
    _assert_stats_equal(stats, back)
    assert (
        back["observation.images.cam"]["q50"].shape == (3, 1, 1)
        and back["frame_index"]["count"].dtype == np.int64
    )


def test_flatten_round_trip_through_parquet(tmp_path):
    features = make_features()
    per_episode = [compute_episode_stats(make_episode(n, seed=n), features) for n in (4, 9)]
    rows = [flatten_stats(s) | {"episode_index": i, "length": 3} for i, s in enumerate(per_episode)]
    assert "stats/observation.images.cam/q99" in rows[0]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "ep.parquet")
    table = pq.read_table(tmp_path / "ep.parquet")
    for original, row in zip(per_episode, table.to_pylist(), strict=True):
        _assert_stats_equal(original, unflatten_stats(row))
    # Rows read through pandas (object arrays of arrays for nested lists) give the same stats.
    pd = pytest.importorskip("pandas")
    frame = pd.read_parquet(tmp_path / "ep.parquet")
    for i, original in enumerate(per_episode):
        _assert_stats_equal(original, unflatten_stats(frame.iloc[i].to_dict()))
