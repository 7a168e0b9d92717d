"""The older v2.0 / v2.1 layout: reading it like a v3.0 dataset, and converting it to v3.0."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from robokit.data import RobotDataset
from robokit.data.meta import DatasetError, DatasetMeta
from robokit.data.tools.check import check_dataset

FIXTURES = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"])
V21 = FIXTURES / "v21_legacy"
WINDOWS = {
    "action": [0, 1 / 30, 2 / 30, 3 / 30],
    "observation.state": [-1 / 30, 0],
    "observation.images.front": [-1 / 30, 0],
    "observation.images.wrist": [0],
}

pytestmark = pytest.mark.lerobot_fixtures


def assert_same_items(a: RobotDataset, b: RobotDataset) -> None:
    assert len(a) == len(b)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x.keys() == y.keys(), i
        for key in x:
            if isinstance(x[key], str):
                assert x[key] == y[key], (i, key)
            else:
                assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), (i, key)


def test_legacy_meta_looks_like_v30() -> None:
    meta = DatasetMeta.load(V21)
    assert meta.version == "v2.1" and meta.fps == 30 and meta.robot_type == "so101_follower"
    eps = meta.episodes
    assert eps.column("length").tolist() == [20, 35, 60]
    assert eps.column("dataset_from_index").tolist() == [0, 20, 55]
    assert eps.column("dataset_to_index").tolist() == [20, 55, 115]
    assert eps[1]["tasks"] == ["place the cube in the bin"]
    assert meta.task_list == ["pick up the red cube", "place the cube in the bin"]
    assert meta.data_file(2) == V21 / "data/chunk-000/episode_000002.parquet"
    assert meta.video_file(1, "observation.images.wrist") == V21 / "videos/chunk-000/observation.images.wrist/episode_000001.mp4"
    assert meta.video_from_timestamp(1, "observation.images.wrist") == 0.0
    # Dataset stats merge the per-episode stats of episodes_stats.jsonl.
    rows = [json.loads(line) for line in (V21 / "meta/episodes_stats.jsonl").read_text().splitlines()]
    counts = np.array([r["stats"]["action"]["count"][0] for r in rows])
    means = np.array([r["stats"]["action"]["mean"] for r in rows])
    assert int(meta.stats["action"]["count"][0]) == 115
    np.testing.assert_allclose(meta.stats["action"]["mean"], (means * counts[:, None]).sum(0) / counts.sum(), rtol=1e-12)
    np.testing.assert_array_equal(meta.stats["action"]["min"], np.min([r["stats"]["action"]["min"] for r in rows], axis=0))
    assert meta.stats["observation.images.front"]["mean"].shape == (3, 1, 1)


def test_v20_reads_stats_json(tmp_path: Path) -> None:
    root = shutil.copytree(V21, tmp_path / "v20")
    legacy = DatasetMeta.load(V21)
    (root / "meta/episodes_stats.jsonl").unlink()
    stats = {k: {s: np.asarray(v).tolist() for s, v in ft.items()} for k, ft in legacy.stats.items()}
    (root / "meta/stats.json").write_text(json.dumps(stats))
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v2.0"
    (root / "meta/info.json").write_text(json.dumps(info))
    meta = DatasetMeta.load(root)
    assert meta.version == "v2.0"
    np.testing.assert_array_equal(meta.stats["action"]["max"], legacy.stats["action"]["max"])
    ds = RobotDataset(root, delta_timestamps={"action": [0, 1 / 30]})
    assert len(ds) == 115 and ds[54]["action_is_pad"].tolist() == [False, True]


def test_legacy_errors_name_the_file(tmp_path: Path) -> None:
    root = shutil.copytree(V21, tmp_path / "bad")
    lines = (root / "meta/episodes.jsonl").read_text().splitlines()
    (root / "meta/episodes.jsonl").write_text("\n".join([lines[0], lines[1][:20], lines[2]]) + "\n")
    with pytest.raises(DatasetError, match=r"episodes\.jsonl line 2 is not valid JSON"):
        DatasetMeta.load(root)
    (root / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    (root / "meta/tasks.jsonl").unlink()
    with pytest.raises(DatasetError, match=r"missing file .*tasks\.jsonl"):
        DatasetMeta.load(root)
    report = check_dataset(root, progress=False)
    assert not report.ok and "tasks.jsonl" in report.faults[0]


def test_convert_round_trip(tmp_path: Path) -> None:
    from robokit.data.tools.convert import convert_dataset

    meta = convert_dataset(V21, tmp_path / "v30", video_files_size_in_mb=0.01, progress=False)
    assert meta.version == "v3.0" and meta.total_episodes == 3 and meta.total_frames == 115
    assert json.loads((meta.root / "meta/info.json").read_text())["total_frames"] == 115
    # Several video files (tiny limit) and the episodes' time ranges inside them.
    assert len(list((meta.root / "videos/observation.images.front").rglob("*.mp4"))) >= 2
    eps = meta.episodes
    starts = eps.column("videos/observation.images.front/from_timestamp")
    ends = eps.column("videos/observation.images.front/to_timestamp")
    np.testing.assert_allclose(ends - starts, eps.column("length") / 30)
    assert set(meta.stats["observation.images.front"]) >= {"q01", "q50", "q99"}
    report = check_dataset(meta.root, full=True, progress=False)
    assert report.ok, report.render()
    # Every item, windows and camera frames included, is what the v2.1 dataset returns.
    assert_same_items(RobotDataset(V21, delta_timestamps=WINDOWS), RobotDataset(meta.root, delta_timestamps=WINDOWS))
    # Packets were copied, not re-encoded: episode 1's bytes are in the new file unchanged.
    old = (V21 / "videos/chunk-000/observation.images.front/episode_000001.mp4").read_bytes()
    new_file = meta.video_file(1, "observation.images.front").read_bytes()
    import av

    with av.open(str(V21 / "videos/chunk-000/observation.images.front/episode_000001.mp4")) as c:
        first_packet = bytes(next(p for p in c.demux(video=0) if p.size))
    assert len(old) > 0 and first_packet in new_file

    with pytest.raises(FileExistsError):
        convert_dataset(V21, meta.root, progress=False)
    with pytest.raises(ValueError, match="already in the v3.0 layout"):
        convert_dataset(meta.root, tmp_path / "again", progress=False)


def test_converted_dataset_can_be_resumed(tmp_path: Path) -> None:
    from robokit.data.synthetic import SyntheticEpisode
    from robokit.data.tools.convert import convert_dataset

    root = convert_dataset(V21, tmp_path / "v30", progress=False).root
    ds = RobotDataset.resume(root)
    episode = SyntheticEpisode(ds.meta.features, seed=3)
    for i in range(10):
        ds.add_frame(episode.frame(i, 30, task="a new task"))
    assert ds.save_episode() == 3
    ds.finalize()
    report = check_dataset(root, progress=False)
    assert report.ok, report.render()
    assert RobotDataset(root)[115]["task"] == "a new task"


def write_v21_copy(src: Path, dst: Path) -> Path:
    """Re-lay a v3.0 dataset without videos in the v2.1 layout (what LeRobot 0.3 wrote)."""
    meta = DatasetMeta.load(src)
    table = pq.read_table(meta.data_file(0))
    (dst / "meta").mkdir(parents=True)
    episodes_lines, stats_lines = [], []
    from robokit.data.stats import unflatten_stats

    for row in meta.episodes:
        ep = row["episode_index"]
        rows = table.filter(np.asarray(table.column("episode_index").to_numpy() == ep))
        path = dst / f"data/chunk-000/episode_{ep:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows, path)
        episodes_lines.append(json.dumps({"episode_index": ep, "tasks": row["tasks"], "length": row["length"]}))
        stats = {k: {s: np.asarray(v).tolist() for s, v in ft.items() if s in ("min", "max", "mean", "std", "count")}
                 for k, ft in unflatten_stats(row).items()}
        stats_lines.append(json.dumps({"episode_index": ep, "stats": stats}))
    (dst / "meta/episodes.jsonl").write_text("\n".join(episodes_lines) + "\n")
    (dst / "meta/episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")
    (dst / "meta/tasks.jsonl").write_text("\n".join(json.dumps({"task_index": i, "task": t}) for i, t in enumerate(meta.task_list)) + "\n")
    info = dict(meta.info)
    info.update(codebase_version="v2.1", total_chunks=1, total_videos=0, video_path=None,
                data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet")
    for key in ("data_files_size_in_mb", "video_files_size_in_mb"):
        info.pop(key, None)
    (dst / "meta/info.json").write_text(json.dumps(info, indent=2))
    return dst


def test_v21_with_inline_images_reads_and_converts(tmp_path: Path) -> None:
    from robokit.data.tools.convert import convert_dataset

    source = FIXTURES / "v30_image_state"
    legacy = write_v21_copy(source, tmp_path / "v21")
    windows = {"action": [0, 0.1, 0.2], "observation.image": [-0.1, 0]}
    assert_same_items(RobotDataset(source, delta_timestamps=windows), RobotDataset(legacy, delta_timestamps=windows))
    assert check_dataset(legacy, progress=False).ok
    converted = convert_dataset(legacy, tmp_path / "v30", progress=False)
    assert check_dataset(converted.root, progress=False).ok
    assert_same_items(RobotDataset(source, delta_timestamps=windows), RobotDataset(converted.root, delta_timestamps=windows))


def test_cli_convert(tmp_path: Path, capsys) -> None:
    from robokit.cli import main

    assert main(["dataset", "convert", str(V21), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "3 episodes, 115 frames" in out and "PASSED" in out
