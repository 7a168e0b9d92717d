"""Dataset tools on real recorded datasets (AV1 mp4 + parquet): check, info, merge, split,
delete-episodes, recompute-stats and the `robokit dataset` command."""

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
from robokit.data.meta import DatasetMeta
from robokit.data.synthetic import SyntheticEpisode, synthetic_features
from robokit.data.tools.check import check_dataset

FPS = 30
LENGTHS = [12, 20, 9, 16]
TASKS = ["pick up the red cube", "place the cube in the bin"]


def record(root: Path, lengths=LENGTHS, tasks=TASKS, seed: int = 0, image: bool = False) -> Path:
    """A dataset with two 32x48 cameras and tiny file limits, so that it spans several files."""
    features = synthetic_features(height=32, width=48, use_videos=not image)
    ds = RobotDataset.create(root, FPS, features, robot_type="sim_arm",
                             data_files_size_in_mb=0.002, video_files_size_in_mb=0.004)
    for e, n in enumerate(lengths):
        episode = SyntheticEpisode(features, seed=seed * 100 + e)
        for i in range(n):
            ds.add_frame(episode.frame(i, FPS, task=tasks[e % len(tasks)]))
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("rec") / "a")


@pytest.fixture(scope="module")
def recorded_b(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("rec") / "b", lengths=[10, 14], tasks=["open the drawer", TASKS[1]], seed=7)


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def episode_content(root: Path, episode: int) -> dict[str, np.ndarray | list]:
    """Everything a reader returns for one episode, minus the renumbered indices."""
    ds = RobotDataset(root, episodes=[episode], return_uint8=True)
    items = [ds[i] for i in range(len(ds))]
    out: dict = {"task": [it["task"] for it in items]}
    for key in ("observation.state", "action", "frame_index", "timestamp", *ds.camera_keys):
        out[key] = torch.stack([it[key] for it in items]).numpy()
    return out


def assert_same_episode(root_a: Path, ep_a: int, root_b: Path, ep_b: int) -> None:
    a, b = episode_content(root_a, ep_a), episode_content(root_b, ep_b)
    assert a["task"] == b["task"], f"tasks differ: {root_a}#{ep_a} vs {root_b}#{ep_b}"
    for key in a:
        if key != "task":
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key}: {root_a}#{ep_a} vs {root_b}#{ep_b}")


# ------------------------------------------------------------------------------------------ check
def test_recorded_dataset_spans_several_files_and_reads_back(recorded: Path) -> None:
    data_files = sorted((recorded / "data").rglob("*.parquet"))
    video_files = sorted((recorded / "videos" / "observation.images.front").rglob("*.mp4"))
    assert len(data_files) >= 2 and len(video_files) >= 2, (data_files, video_files)
    features = synthetic_features(height=32, width=48)
    ds = RobotDataset(recorded, return_uint8=True)
    assert len(ds) == sum(LENGTHS)
    position = 0
    for e, n in enumerate(LENGTHS):
        episode = SyntheticEpisode(features, seed=e)
        for i in range(0, n, 4):
            want, got = episode.frame(i, FPS), ds[position + i]
            np.testing.assert_array_equal(got["observation.state"].numpy(), want["observation.state"])
            np.testing.assert_array_equal(got["action"].numpy(), want["action"])
            assert got["task"] == TASKS[e % 2] and int(got["episode_index"]) == e and int(got["frame_index"]) == i
            frame = got["observation.images.front"].permute(1, 2, 0).numpy().astype(np.float64)
            mse = ((frame - want["observation.images.front"]) ** 2).mean()
            assert 10 * np.log10(255**2 / max(mse, 1e-12)) >= 30
        position += n


def test_check_passes_on_good_datasets(recorded: Path) -> None:
    report = check_dataset(recorded, full=True, progress=False)
    assert report.ok, report.render()
    assert "every frame" in report.render()
    for name in ("v30_video_2cam", "v30_image_state", "v21_legacy"):
        fixture = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"]) / name
        if fixture.is_dir():
            report = check_dataset(fixture, progress=False)
            assert report.ok, report.render()


def _faults(root: Path) -> str:
    report = check_dataset(root, progress=False)
    assert not report.ok, f"check passed a broken dataset:\n{report.render()}"
    return "\n".join(report.faults)


def test_check_catches_a_deleted_video_file(recorded: Path, tmp_path: Path) -> None:
    root = copy(recorded, tmp_path / "ds")
    victim = sorted((root / "videos" / "observation.images.wrist").rglob("*.mp4"))[-1]
    victim.unlink()
    faults = _faults(root)
    assert str(victim) in faults and "missing" in faults


def test_check_catches_a_truncated_parquet(recorded: Path, tmp_path: Path) -> None:
    root = copy(recorded, tmp_path / "ds")
    victim = sorted((root / "data").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    faults = _faults(root)
    assert victim.name in faults and "truncated" in faults


def test_check_catches_a_wrong_total_in_info(recorded: Path, tmp_path: Path) -> None:
    root = copy(recorded, tmp_path / "ds")
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] += 3
    (root / "meta/info.json").write_text(json.dumps(info))
    assert f"total_frames is {sum(LENGTHS) + 3}, but meta/episodes has {sum(LENGTHS)}" in _faults(root)


def test_check_catches_a_missing_stats_key(recorded: Path, tmp_path: Path) -> None:
    root = copy(recorded, tmp_path / "ds")
    stats = json.loads((root / "meta/stats.json").read_text())
    del stats["action"]["q99"]
    (root / "meta/stats.json").write_text(json.dumps(stats))
    faults = _faults(root)
    assert "meta/stats.json: feature 'action' lacks ['q99']" in faults


def test_check_catches_a_non_continuous_index(recorded: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    root = copy(recorded, tmp_path / "ds")
    path = sorted((root / "data").rglob("*.parquet"))[-1]
    table = pq.read_table(path)
    index = table.column("index").to_numpy().copy()
    index[3:] += 1  # a gap inside the last file
    table = table.set_column(table.column_names.index("index"), "index", pa.array(index))
    pq.write_table(table, path)
    assert "index is not continuous" in _faults(root)


def test_check_catches_bad_timestamps_and_task_index(recorded: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    root = copy(recorded, tmp_path / "ds")
    path = sorted((root / "data").rglob("*.parquet"))[0]
    table = pq.read_table(path)
    ts = table.column("timestamp").to_numpy().copy()
    ts[2] += 0.01
    task = table.column("task_index").to_numpy().copy()
    task[1] = 5
    table = table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(ts))
    table = table.set_column(table.column_names.index("task_index"), "task_index", pa.array(task))
    pq.write_table(table, path)
    faults = _faults(root)
    assert "is not frame_index / fps" in faults and "task_index 5 is not a task" in faults


# ------------------------------------------------------------------------------------------ merge
def test_merge_remaps_tasks_and_renumbers(recorded: Path, recorded_b: Path, tmp_path: Path) -> None:
    from robokit.data.tools.merge import merge_datasets

    out = merge_datasets([recorded, recorded_b], tmp_path / "merged", progress=False)
    assert out.total_episodes == len(LENGTHS) + 2
    assert out.total_frames == sum(LENGTHS) + 24
    assert out.task_list == TASKS + ["open the drawer"]  # the shared task keeps one index
    assert check_dataset(out.root, progress=False).ok
    merged = RobotDataset(out.root)
    np.testing.assert_array_equal(merged._columns["index"], np.arange(out.total_frames))
    assert_same_episode(recorded, 1, out.root, 1)
    assert_same_episode(recorded_b, 0, out.root, len(LENGTHS))  # "open the drawer": task index 0 -> 2
    assert_same_episode(recorded_b, 1, out.root, len(LENGTHS) + 1)


def test_merge_rejects_different_features(recorded: Path, tmp_path: Path) -> None:
    from robokit.data.tools.merge import merge_datasets

    image_ds = record(tmp_path / "img", lengths=[5], image=True)
    with pytest.raises(ValueError, match="observation.images.front"):
        merge_datasets([recorded, image_ds], tmp_path / "merged", progress=False)
    assert not (tmp_path / "merged").exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]  # nothing left behind


# ------------------------------------------------------------------------------------------ split / delete
def test_split_then_merge_round_trip(recorded: Path, tmp_path: Path) -> None:
    from robokit.data.tools.edit import split_dataset
    from robokit.data.tools.merge import merge_datasets

    parts = split_dataset(recorded, [tmp_path / "a", tmp_path / "b"], episodes=["0,2", "1,3"], progress=False)
    assert [p.total_episodes for p in parts] == [2, 2]
    assert parts[0].total_frames == LENGTHS[0] + LENGTHS[2]
    for part in parts:
        assert check_dataset(part.root, progress=False).ok
    assert_same_episode(recorded, 2, parts[0].root, 1)
    assert_same_episode(recorded, 3, parts[1].root, 1)
    back = merge_datasets([parts[0].root, parts[1].root], tmp_path / "back", progress=False)
    for new, old in enumerate([0, 2, 1, 3]):
        assert_same_episode(recorded, old, back.root, new)


def test_split_by_fractions(recorded: Path, tmp_path: Path) -> None:
    from robokit.data.tools.edit import split_dataset

    train, val = split_dataset(recorded, [tmp_path / "train", tmp_path / "val"], fractions=[0.75, 0.25], progress=False)
    assert (train.total_episodes, val.total_episodes) == (3, 1)
    assert_same_episode(recorded, 3, val.root, 0)
    with pytest.raises(ValueError, match="overlap"):
        split_dataset(recorded, [tmp_path / "x", tmp_path / "y"], episodes=["0-1", "1-2"], progress=False)


def test_delete_episodes_to_new_folder_and_in_place(recorded: Path, tmp_path: Path) -> None:
    from robokit.data.tools.edit import delete_episodes

    out = delete_episodes(recorded, "1", dst=tmp_path / "out", progress=False)
    assert out.total_episodes == 3 and out.total_frames == sum(LENGTHS) - LENGTHS[1]
    assert_same_episode(recorded, 2, out.root, 1)

    root = copy(recorded, tmp_path / "inplace")
    meta = delete_episodes(root, [0, 3], progress=False)
    assert meta.root == root and meta.total_episodes == 2
    assert check_dataset(root, progress=False).ok
    assert_same_episode(recorded, 1, root, 0)
    assert_same_episode(recorded, 2, root, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inplace", "out"]  # no staging or backup left
    with pytest.raises(ValueError, match="not in"):
        delete_episodes(root, [9], progress=False)


# ------------------------------------------------------------------------------------------ stats
def test_recompute_stats_restores_exact_stats(recorded: Path, tmp_path: Path) -> None:
    from robokit.data.tools.stats_tools import recompute_stats

    root = copy(recorded, tmp_path / "ds")
    (root / "meta/stats.json").write_text("{}")
    assert not check_dataset(root, progress=False).ok
    meta = recompute_stats(root, progress=False)
    assert check_dataset(root, progress=False).ok
    state = RobotDataset(root)._columns["observation.state"].astype(np.float64)
    stats = meta.stats["observation.state"]
    np.testing.assert_array_equal(stats["min"], state.min(0))
    np.testing.assert_array_equal(stats["max"], state.max(0))
    np.testing.assert_allclose(stats["mean"], state.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], state.std(0), rtol=1e-9)
    assert int(stats["count"][0]) == sum(LENGTHS)
    camera = meta.stats["observation.images.front"]
    assert camera["mean"].shape == (3, 1, 1) and 0 < camera["mean"].min() < camera["mean"].max() < 1
    assert int(camera["count"][0]) == sum(LENGTHS)


# ------------------------------------------------------------------------------------------ CLI
def test_cli_info_check_and_delete(recorded: Path, tmp_path: Path, capsys) -> None:
    from robokit.cli import main

    assert main(["dataset", "info", str(recorded), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == len(LENGTHS) and info["frames"] == sum(LENGTHS) and info["fps"] == FPS
    assert info["robot_type"] == "sim_arm" and [t["task"] for t in info["tasks"]] == TASKS
    assert info["size_bytes"]["videos"] > 0 and info["features"]["observation.images.front"]["codec"] == "av1"
    assert main(["dataset", "info", str(recorded)]) == 0
    assert "size on disk" in capsys.readouterr().out

    assert main(["dataset", "check", str(recorded)]) == 0
    assert "PASSED" in capsys.readouterr().out
    broken = copy(recorded, tmp_path / "broken")
    (broken / "meta/stats.json").unlink()
    assert main(["dataset", "check", str(broken)]) == 1
    assert "FAULT stats: meta/stats.json is missing" in capsys.readouterr().out

    assert main(["dataset", "delete-episodes", str(broken), "--episodes", "0-1", "--out", str(tmp_path / "d")]) == 0
    assert DatasetMeta.load(tmp_path / "d").total_episodes == 2
    assert main(["dataset", "chek", str(recorded)]) == 2
    assert "Did you mean 'check'" in capsys.readouterr().err


def test_interrupted_runs_are_cleaned_up(recorded: Path, tmp_path: Path) -> None:
    """A killed tool leaves a staging folder (dead pid) or, mid-swap, the old dataset moved aside."""
    import subprocess

    from robokit.data.tools.assemble import clean_interrupted
    from robokit.data.tools.edit import delete_episodes

    proc = subprocess.Popen(["true"])
    proc.wait()
    root = copy(recorded, tmp_path / "ds")
    stale = tmp_path / f".ds.robokit-staging-{proc.pid}-deadbeef"
    stale.mkdir()
    root.rename(tmp_path / ".ds.robokit-old-12345678")  # killed between the two renames of a swap
    assert "restored" in clean_interrupted(root)[0]
    assert root.is_dir() and not stale.exists()
    assert delete_episodes(root, "0", progress=False).total_episodes == len(LENGTHS) - 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
