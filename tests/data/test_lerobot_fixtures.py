"""robokit reads the datasets that LeRobot itself wrote and returns what LeRobot's reader returned.

Fixtures: shared/fixtures/lerobot beside the checkout (see its README). Items were saved by LeRobot 0.4.4 (v3.0)
and 0.3.2 (v2.1) at a few indices, with `delta_timestamps` windows; camera tensors are stored as
uint8 = round(float * 255).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(os.environ["ROBOKIT_LEROBOT_FIXTURES"])
DATASETS = ["v30_video_2cam", "v30_image_state", "v21_legacy"]
CAMERA_MAX_ABS_DIFF = 2  # both readers decode the same stream; only the YUV -> RGB rounding may differ

pytestmark = pytest.mark.lerobot_fixtures


def load_reference(name: str, suffix: str):
    from safetensors import safe_open

    path = FIXTURES / f"{name}.{suffix}.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    items: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, item_key = key.split("/", 1)
        items.setdefault(int(index), {})[item_key] = value
    camera_keys = {k.split("/", 1)[1] for k in json.loads(metadata["uint8_camera_keys"])}
    return items, metadata, camera_keys


def assert_item_matches(item: dict, expected: dict[str, torch.Tensor], camera_keys: set[str], where: str) -> None:
    for key, want in expected.items():
        assert key in item, f"{where}: robokit's item has no {key!r}"
        got = item[key]
        if key in camera_keys:
            got_u8 = (got.float() * 255).round().to(torch.int16)
            assert got_u8.shape == want.shape, f"{where} {key}: shape {tuple(got_u8.shape)} != {tuple(want.shape)}"
            diff = int((got_u8 - want.to(torch.int16)).abs().max())
            assert diff <= CAMERA_MAX_ABS_DIFF, f"{where} {key}: max abs pixel difference {diff}"
        else:
            assert got.shape == want.shape, f"{where} {key}: shape {tuple(got.shape)} != {tuple(want.shape)}"
            assert got.dtype == want.dtype, f"{where} {key}: dtype {got.dtype} != {want.dtype}"
            assert torch.equal(got, want), f"{where} {key}: {got} != {want}"


@pytest.mark.parametrize("suffix", ["ref_items", "ref_items_camdelta"])
@pytest.mark.parametrize("name", DATASETS)
def test_reference_items(name: str, suffix: str) -> None:
    from robokit.data import RobotDataset

    items, metadata, camera_keys = load_reference(name, suffix)
    delta_timestamps = json.loads(metadata["delta_timestamps"])
    tasks = json.loads(metadata["tasks"])
    ds = RobotDataset(FIXTURES / name, delta_timestamps=delta_timestamps)
    assert sorted(items) == json.loads(metadata["indices"])
    for index, expected in items.items():
        item = ds[index]
        assert_item_matches(item, expected, camera_keys, f"{name}[{index}]")
        assert item["task"] == tasks[str(index)]


@pytest.mark.parametrize("name", ["v30_video_2cam", "v21_legacy"])
def test_every_frame_matches_groundtruth(name: str) -> None:
    """All tabular columns exact; every decoded camera frame close to what was recorded (PSNR)."""
    from robokit.data import RobotDataset

    truth = np.load(FIXTURES / "groundtruth_video.npz")
    ds = RobotDataset(FIXTURES / name, return_uint8=True)
    n = len(ds)
    for key in ("observation.state", "action", "episode_index", "frame_index", "index", "task_index", "timestamp"):
        np.testing.assert_array_equal(ds._columns[key], truth[key][:n].reshape(ds._columns[key].shape), err_msg=key)
    for key in ds.meta.camera_keys:
        got = np.stack([ds[i][key].numpy() for i in range(n)]).astype(np.float64)
        mse = ((got - truth[key][:n].astype(np.float64)) ** 2).mean()
        psnr = 10 * np.log10(255**2 / mse)
        assert psnr >= 30, f"{name} {key}: PSNR {psnr:.1f} dB against the recorded frames"


def test_image_state_groundtruth() -> None:
    from robokit.data import RobotDataset

    truth = np.load(FIXTURES / "v30_image_state.groundtruth.npz")
    ds = RobotDataset(FIXTURES / "v30_image_state", return_uint8=True)
    assert len(ds) == len(truth["index"])
    for key in ("observation.state", "action", "next.reward", "next.done", "index", "timestamp", "task_index"):
        np.testing.assert_array_equal(ds._columns[key], truth[key].reshape(ds._columns[key].shape), err_msg=key)
    frames = np.stack([ds[i]["observation.image"].numpy() for i in range(len(ds))])
    np.testing.assert_array_equal(frames, truth["observation.image"])  # PNG is lossless
