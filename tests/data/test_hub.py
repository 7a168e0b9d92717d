"""Hub paths without the network: which files an episode selection needs, and the repo-id switch."""

from __future__ import annotations

import pytest

from robokit.data import RobotDataset
from robokit.data.hub import files_for_episodes
from robokit.data.meta import DatasetMeta
from robokit.data.synthetic import record_synthetic_dataset


def test_files_for_episodes_picks_only_needed_files(tmp_path):
    root = tmp_path / "ds"
    record_synthetic_dataset(root, lengths=(20, 20, 20), codec="h264", data_files_size_in_mb=0.001, video_files_size_in_mb=0.001)
    meta = DatasetMeta.load(root)
    assert files_for_episodes(meta, [1]) == [
        "data/chunk-000/file-001.parquet",
        "videos/observation.images.front/chunk-000/file-001.mp4",
        "videos/observation.images.wrist/chunk-000/file-001.mp4",
    ]
    assert len(files_for_episodes(meta, None)) == 9
    for rel in files_for_episodes(meta, None):
        assert (root / rel).is_file()


def test_a_repo_id_goes_to_the_hub_client_offline(tmp_path, monkeypatch):
    # With the hub offline and nothing cached, the hub client itself must be reached and fail clearly.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception) as err:
        RobotDataset("someone/some_dataset", cache_dir=tmp_path / "cache")
    assert "offline" in str(err.value).lower() or "cannot find" in str(err.value).lower() or "local" in str(err.value).lower()
