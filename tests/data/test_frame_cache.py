"""The decoded-frame cache serves the same frames as decoding, and is rebuilt when the dataset changes."""

from __future__ import annotations

import numpy as np
import torch

from robokit.data import RobotDataset
from robokit.data.frame_cache import CACHE_DIR
from robokit.data.synthetic import SyntheticEpisode, record_synthetic_dataset


def test_cache_matches_decoding_and_follows_changes(tmp_path):
    root = tmp_path / "ds"
    record_synthetic_dataset(root, lengths=(8, 6), codec="h264")
    delta = {"observation.images.front": [-1 / 30, 0], "action": [0, 1 / 30]}
    decoded = RobotDataset(root, delta_timestamps=delta, return_uint8=True)
    cached = RobotDataset(root, delta_timestamps=delta, return_uint8=True, frame_cache=True)
    for i in range(len(decoded)):
        a, b = decoded[i], cached[i]
        assert torch.equal(a["observation.images.front"], b["observation.images.front"])
        assert torch.equal(a["observation.images.wrist"], b["observation.images.wrist"])
        assert torch.equal(a["action"], b["action"])
    (first,) = list((root / CACHE_DIR).iterdir())

    # Episode selection uses the same cache (frames are keyed by the global index).
    subset = RobotDataset(root, episodes=[1], return_uint8=True, frame_cache=True)
    assert torch.equal(subset[0]["observation.images.front"], decoded[8]["observation.images.front"][1])

    # Appending an episode changes the fingerprint: the cache is rebuilt and covers the new frames.
    ds = RobotDataset.resume(root, video_codec="h264")
    episode = SyntheticEpisode(ds.features, seed=5)
    for i in range(4):
        ds.add_frame(episode.frame(i, 30))
    ds.save_episode()
    ds.finalize()
    cached = RobotDataset(root, return_uint8=True, frame_cache=True)
    assert len(cached) == 18
    (second,) = list((root / CACHE_DIR).iterdir())
    assert second != first
    assert torch.equal(cached[17]["observation.images.wrist"], RobotDataset(root, return_uint8=True)[17]["observation.images.wrist"])


def test_cache_resizes_and_works_in_workers(tmp_path):
    root = tmp_path / "ds"
    record_synthetic_dataset(root, lengths=(6, 6), codec="h264", height=32, width=48)
    ds = RobotDataset(root, frame_cache=(16, 24))
    assert ds[0]["observation.images.front"].shape == (3, 16, 24)
    full = RobotDataset(root)[3]["observation.images.front"]
    small = torch.nn.functional.interpolate(full[None], size=(16, 24), mode="bilinear", antialias=True)[0]
    assert (ds[3]["observation.images.front"] - small).abs().max() < 2 / 255 + 1e-6
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    frames = torch.cat([b["observation.images.front"] for b in loader])
    assert frames.shape == (12, 3, 16, 24)
    np.testing.assert_array_equal(frames[5].numpy(), ds[5]["observation.images.front"].numpy())
