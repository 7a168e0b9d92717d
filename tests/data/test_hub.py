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


@pytest.mark.parametrize("how", ["unreachable", "offline"])
def test_pushing_a_dataset_without_the_hub_is_one_line_that_keeps_the_dataset(tmp_path, how):
    """`robokit record --push-to-hub` on a machine without the hub printed only urllib3's MaxRetryError."""
    import os
    import socket
    import subprocess
    import sys

    root = tmp_path / "ds"
    record_synthetic_dataset(root, lengths=(5,), codec="h264")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    if how == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:  # a local port nobody listens on: refused at once, no traffic leaves the machine
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_OFFLINE="0")
    code = f"from robokit.data import RobotDataset; RobotDataset({str(root)!r}).push_to_hub('me/ds', token='x')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ConnectionError: push of dataset"), proc.stderr[-2000:]
    assert "'me/ds'" in last and f"RobotDataset({str(root)!r}).push_to_hub('me/ds')" in last
    assert ("offline" if how == "offline" else "cannot reach the hub") in last
    assert RobotDataset(root).num_episodes == 1
