"""RobotDataset: write -> read round trips, windows, errors, resume, DataLoader."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from robokit.data import RobotDataset
from robokit.data.features import FeatureError
from robokit.data.meta import DatasetError
from robokit.data.synthetic import SyntheticEpisode, psnr, synthetic_features
from robokit.data.synthetic import record_synthetic_dataset as _record

TASKS = ["pick up the red cube", "place the cube in the bin"]


def record(root, codec="h264", **kwargs):
    return _record(root, codec=codec, **kwargs)


def test_image_dataset_round_trip_is_exact(tmp_path):
    given = record(tmp_path / "ds", use_videos=False)
    ds = RobotDataset(tmp_path / "ds")
    assert len(ds) == 34 and ds.num_episodes == 3 and ds.fps == 30
    assert ds.features["observation.images.front"]["dtype"] == "image"
    for i in [0, 11, 12, 18, 19, 33]:
        item = ds[i]
        np.testing.assert_array_equal(item["observation.state"].numpy(), given["observation.state"][i])
        np.testing.assert_array_equal(item["action"].numpy(), given["action"][i])
        assert item["index"].item() == i and item["index"].shape == ()
        assert item["episode_index"].item() == given["episode_index"][i]
        assert item["frame_index"].item() == given["frame_index"][i]
        assert item["timestamp"].item() == pytest.approx(given["frame_index"][i] / 30)
        assert item["task"] == given["task"][i]
        front = item["observation.images.front"]
        assert front.dtype == torch.float32 and front.shape == (3, 32, 48)
        np.testing.assert_array_equal((front * 255).round().byte().permute(1, 2, 0).numpy(), given["observation.images.front"][i])


def test_video_dataset_round_trip_within_codec_loss(tmp_path):
    given = record(tmp_path / "ds", codec="h264")
    ds = RobotDataset(tmp_path / "ds", return_uint8=True)
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    assert info["total_episodes"] == 3 and info["total_frames"] == 34 and info["total_tasks"] == 2
    for i in range(len(ds)):
        item = ds[i]
        np.testing.assert_array_equal(item["observation.state"].numpy(), given["observation.state"][i])
        for cam in ("front", "wrist"):
            frame = item[f"observation.images.{cam}"]
            assert frame.dtype == torch.uint8 and frame.shape == (3, 32, 48)
            assert psnr(frame.permute(1, 2, 0).numpy(), given[f"observation.images.{cam}"][i]) > 30


def test_layout_matches_spec(tmp_path):
    record(tmp_path / "ds")
    root = tmp_path / "ds"
    for rel in ["meta/info.json", "meta/stats.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
                "data/chunk-000/file-000.parquet", "videos/observation.images.front/chunk-000/file-000.mp4"]:
        assert (root / rel).is_file(), rel
    assert not (root / ".robokit_tmp").exists()
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in episodes] == [12, 7, 15]
    assert [e["dataset_from_index"] for e in episodes] == [0, 12, 19]
    assert [e["tasks"] for e in episodes] == [[TASKS[0]], [TASKS[1]], [TASKS[0]]]
    starts = [e["videos/observation.images.front/from_timestamp"] for e in episodes]
    assert starts == pytest.approx([0, 12 / 30, 19 / 30])
    stats = json.loads((root / "meta/stats.json").read_text())
    assert set(stats["observation.state"]) >= {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [34]
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    assert [t["__index_level_0__"] for t in tasks] == TASKS


def test_windows_clamp_and_pad_at_episode_edges(tmp_path):
    given = record(tmp_path / "ds", use_videos=False)
    fps = 30
    delta = {"action": [0, 1 / fps, 2 / fps, 3 / fps], "observation.state": [-2 / fps, -1 / fps, 0],
             "observation.images.front": [-1 / fps, 0]}
    ds = RobotDataset(tmp_path / "ds", delta_timestamps=delta)
    item = ds[10]  # episode 0 has frames 0..11
    np.testing.assert_array_equal(item["action_is_pad"].numpy(), [False, False, True, True])
    np.testing.assert_array_equal(item["action"].numpy(), given["action"][[10, 11, 11, 11]])
    item = ds[12]  # first frame of episode 1
    np.testing.assert_array_equal(item["observation.state_is_pad"].numpy(), [True, True, False])
    np.testing.assert_array_equal(item["observation.state"].numpy(), given["observation.state"][[12, 12, 12]])
    assert item["observation.images.front"].shape == (2, 3, 32, 48)
    np.testing.assert_array_equal(item["observation.images.front_is_pad"].numpy(), [True, False])
    assert torch.equal(item["observation.images.front"][0], item["observation.images.front"][1])


def test_window_offsets_must_be_frame_multiples(tmp_path):
    record(tmp_path / "ds", lengths=(5,), use_videos=False)
    with pytest.raises(ValueError, match=r"delta_timestamps\['action'\] has 0.01 s"):
        RobotDataset(tmp_path / "ds", delta_timestamps={"action": [0, 0.01]})
    with pytest.raises(KeyError, match="Did you mean 'action'"):
        RobotDataset(tmp_path / "ds", delta_timestamps={"actions": [0]})


def test_episode_selection(tmp_path):
    given = record(tmp_path / "ds", use_videos=False)
    ds = RobotDataset(tmp_path / "ds", episodes=[2, 0])
    assert ds.episodes == [0, 2] and len(ds) == 27
    assert ds[12]["index"].item() == 19
    np.testing.assert_array_equal(ds[12]["action"].numpy(), given["action"][19])
    with pytest.raises(KeyError, match=r"episodes \[7\]"):
        RobotDataset(tmp_path / "ds", episodes=[7])


def _frame(features, **overrides):
    frame = SyntheticEpisode(features).frame(0, 30)
    frame.update(overrides)
    return frame


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"observation.state": np.zeros(7, np.float32)}, r"'observation.state' has shape \(7,\), the dataset declares \(6,\)"),
        ({"action": np.zeros(6, np.int64)}, r"'action' has dtype int64, the dataset declares float32"),
        ({"action": np.array([0, np.nan, 0, 0, 0, 0], np.float32)}, r"'action' has the non-finite value nan at flat position 1"),
        ({"extra": np.zeros(1)}, r"unexpected \['extra'\]"),
        ({"observation.images.front": np.zeros((10, 10, 3), np.uint8)}, r"'observation.images.front' has shape \(10, 10, 3\)"),
        ({"task": None}, "needs a 'task' string"),
    ],
)
def test_add_frame_rejects_bad_frames_and_keeps_buffer(tmp_path, bad, message):
    features = synthetic_features(height=16, width=16, use_videos=False)
    ds = RobotDataset.create(tmp_path / "ds", fps=30, features=features)
    ds.add_frame(_frame(features))
    with pytest.raises(FeatureError, match=message):
        ds.add_frame(_frame(features, **bad))
    missing = _frame(features)
    del missing["action"]
    with pytest.raises(FeatureError, match=r"missing \['action'\]"):
        ds.add_frame(missing)
    ds.add_frame(_frame(features))
    assert ds.episode_buffer_size == 2
    ds.save_episode()
    ds.finalize()
    assert len(RobotDataset(tmp_path / "ds")) == 2


def test_clear_episode_buffer_drops_the_attempt(tmp_path):
    features = synthetic_features(height=16, width=16)
    ds = RobotDataset.create(tmp_path / "ds", fps=30, features=features, video_codec="h264")
    episode = SyntheticEpisode(features)
    for i in range(5):
        ds.add_frame(episode.frame(i, 30))
    ds.clear_episode_buffer()
    for i in range(3):
        ds.add_frame(episode.frame(i, 30))
    assert ds.save_episode() == 0
    ds.finalize()
    read = RobotDataset(tmp_path / "ds")
    assert len(read) == 3 and read.num_episodes == 1


def test_resume_appends_episodes(tmp_path):
    given = record(tmp_path / "ds", lengths=(6, 4))
    ds = RobotDataset.resume(tmp_path / "ds", video_codec="h264")
    features = ds.features
    episode = SyntheticEpisode(features, seed=9)
    for i in range(5):
        ds.add_frame(episode.frame(i, 30, task="a new task"))
    assert ds.save_episode() == 2
    ds.finalize()
    read = RobotDataset(tmp_path / "ds", return_uint8=True)
    assert len(read) == 15 and read.num_episodes == 3
    assert read.meta.task_list == [*TASKS, "a new task"]
    np.testing.assert_array_equal(read[3]["action"].numpy(), given["action"][3])
    last = read[14]
    assert last["task"] == "a new task" and last["index"].item() == 14 and last["frame_index"].item() == 4
    np.testing.assert_array_equal(last["observation.state"].numpy(), episode.frame(4, 30)["observation.state"])
    assert psnr(last["observation.images.wrist"].permute(1, 2, 0).numpy(), episode.frame(4, 30)["observation.images.wrist"]) > 30


def test_many_small_files(tmp_path):
    """Tiny size limits: data and video roll over to new files; every frame reads back."""
    given = record(tmp_path / "ds", lengths=(20, 20, 20, 20), data_files_size_in_mb=0.001,
                   video_files_size_in_mb=0.001, chunks_size=2)
    root = tmp_path / "ds"
    data_files = sorted(p.relative_to(root).as_posix() for p in root.glob("data/*/*.parquet"))
    assert data_files == ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",
                          "data/chunk-001/file-000.parquet", "data/chunk-001/file-001.parquet"]
    assert len(list(root.glob("videos/observation.images.front/*/*.mp4"))) == 4
    ds = RobotDataset(root, return_uint8=True, delta_timestamps={"action": [0, 1 / 30]})
    for i in [0, 19, 20, 39, 59, 60, 79]:
        item = ds[i]
        np.testing.assert_array_equal(item["observation.state"].numpy(), given["observation.state"][i])
        assert psnr(item["observation.images.front"].permute(1, 2, 0).numpy(), given["observation.images.front"][i]) > 30


def test_dataloader_with_two_workers_matches_indexing(tmp_path):
    record(tmp_path / "ds", lengths=(10, 10))
    ds = RobotDataset(tmp_path / "ds", delta_timestamps={"action": [0, 1 / 30]}, return_uint8=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 20
    for batch in batches:
        for j, i in enumerate(batch["index"].tolist()):
            assert torch.equal(batch["action"][j], ds[i]["action"])
            assert torch.equal(batch["observation.images.front"][j], ds[i]["observation.images.front"])
            assert batch["task"][j] == ds[i]["task"]


def test_clear_errors_for_broken_files(tmp_path):
    record(tmp_path / "ds", lengths=(5,), use_videos=False)
    root = tmp_path / "ds"
    data = root / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(DatasetError, match="file-000.parquet"):
        RobotDataset(root)
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v9.9"
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"info.json has codebase_version 'v9.9'"):
        RobotDataset(root)
    (root / "meta/info.json").unlink()
    with pytest.raises(DatasetError, match="missing file .*info.json"):
        RobotDataset(root)
    with pytest.raises(DatasetError, match="does not exist"):
        RobotDataset(tmp_path / "nowhere")


def test_create_refuses_a_non_empty_folder(tmp_path):
    record(tmp_path / "ds", lengths=(3,), use_videos=False)
    with pytest.raises(FileExistsError, match="resume"):
        RobotDataset.create(tmp_path / "ds", fps=30, features=synthetic_features())


def test_image_transforms_are_reproducible_with_a_seed(tmp_path):
    from robokit.data.transforms import ImageTransforms, ImageTransformsConfig

    record(tmp_path / "ds", lengths=(4,), use_videos=False)
    transforms = ImageTransforms(ImageTransformsConfig(enable=True))
    delta = {"observation.images.front": [-1 / 30, 0]}
    a = RobotDataset(tmp_path / "ds", image_transforms=transforms, seed=3, delta_timestamps=delta)
    b = RobotDataset(tmp_path / "ds", image_transforms=transforms, seed=3, delta_timestamps=delta)
    c = RobotDataset(tmp_path / "ds", image_transforms=transforms, seed=4, delta_timestamps=delta)
    plain = RobotDataset(tmp_path / "ds", delta_timestamps=delta)
    assert torch.equal(a[2]["observation.images.front"], b[2]["observation.images.front"])
    assert not torch.equal(a[2]["observation.images.front"], c[2]["observation.images.front"])
    assert not torch.equal(a[2]["observation.images.front"], plain[2]["observation.images.front"])
    # One augmentation per window: frame 0 of sample 1 is frame 0 of sample 0 (clamped), augmented alike.
    first = a[0]["observation.images.front"]
    assert torch.equal(first[0], first[1])
