"""A decoded-frame cache: every camera frame decoded once into a memory-mapped uint8 array.

For datasets that fit on local disk, decoding video is the cost of a training sample; with the
cache a sample is a few memory copies. Frames are stored per camera as (total_frames, C, H, W)
uint8 in `<root>/.robokit_cache/frames/<fingerprint>/`, optionally resized to the policy's input
size. The fingerprint covers info.json and the episode metadata, so the cache is rebuilt when the
dataset changes. Built to a temp folder and renamed, so a killed build leaves no half cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from robokit.data.dataset import RobotDataset

logger = logging.getLogger(__name__)

CACHE_DIR = ".robokit_cache/frames"


def fingerprint(root: Path, size: tuple[int, int] | None) -> str:
    h = hashlib.sha256()
    h.update((root / "meta/info.json").read_bytes())
    for path in sorted((root / "meta").rglob("*.parquet")) + sorted((root / "meta").glob("*.jsonl")):
        stat = path.stat()
        h.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    h.update(repr(size).encode())
    return h.hexdigest()[:16]


class FrameCache:
    def __init__(self, folder: Path, manifest: dict):
        self.folder = folder
        self.manifest = manifest
        self.row_of_index = np.load(folder / "row_of_index.npy", allow_pickle=False)  # global frame index -> row
        self._arrays: dict[str, np.memmap] = {}
        self._pid = os.getpid()

    @classmethod
    def open_or_build(cls, ds: RobotDataset, size: tuple[int, int] | None = None) -> FrameCache:
        root = ds.root
        folder = root / CACHE_DIR / fingerprint(root, size)
        if not (folder / "manifest.json").is_file():
            for stale in (root / CACHE_DIR).glob("*"):
                if stale != folder:
                    shutil.rmtree(stale, ignore_errors=True)
            build(ds, folder, size)
        return cls(folder, json.loads((folder / "manifest.json").read_text()))

    def _array(self, key: str) -> np.memmap:
        if os.getpid() != self._pid:  # a forked DataLoader worker maps the files itself
            self._arrays, self._pid = {}, os.getpid()
        if key not in self._arrays:
            shape = tuple(self.manifest["shapes"][key])
            self._arrays[key] = np.memmap(self.folder / f"{key}.u8", dtype=np.uint8, mode="r", shape=shape)
        return self._arrays[key]

    def frames_at(self, key: str, global_indices: np.ndarray) -> torch.Tensor:
        rows = self.row_of_index[global_indices]
        return torch.from_numpy(np.ascontiguousarray(self._array(key)[rows]))

    def __getstate__(self):
        return {"folder": self.folder, "manifest": self.manifest}

    def __setstate__(self, state):
        self.__init__(state["folder"], state["manifest"])


def build(ds: RobotDataset, folder: Path, size: tuple[int, int] | None) -> None:
    """Decode every frame of every camera of the whole dataset into `folder`."""
    from robokit.progress import progress as progress_bar

    from robokit.data.dataset import RobotDataset

    full = RobotDataset(ds.root, return_uint8=True, video_backend=ds.video_backend)
    meta = full.meta
    tmp = folder.with_name(folder.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = len(full)
    index = full._columns["index"]
    row_of_index = np.full(int(index.max()) + 1 if n else 0, -1, dtype=np.int64)
    row_of_index[index] = np.arange(n)
    shapes = {}
    arrays = {}
    for key in meta.camera_keys:
        h, w, c = meta.features[key]["shape"]
        if size is not None:
            h, w = size
        shapes[key] = [n, c, h, w]
        arrays[key] = np.memmap(tmp / f"{key}.u8", dtype=np.uint8, mode="w+", shape=(n, c, h, w))
    ep_bounds = list(zip(full._ep_start.tolist(), full._ep_end.tolist()))
    with progress_bar(total=n * len(arrays), desc=f"frame cache {ds.root.name}", unit="frame") as bar:
        for ep_row, (start, end) in enumerate(ep_bounds):
            positions = np.arange(start, end)
            for key, array in arrays.items():
                frames = full._frames(key, positions, ep_row)  # uint8 (T, C, H, W)
                if size is not None and tuple(frames.shape[-2:]) != tuple(size):
                    frames = torch.nn.functional.interpolate(frames.float(), size=size, mode="bilinear", antialias=True,
                                                             align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
                array[start:end] = frames.numpy()
                bar.update(end - start)
    for array in arrays.values():
        array.flush()
    np.save(tmp / "row_of_index.npy", row_of_index, allow_pickle=False)
    manifest = {"shapes": shapes, "size": size, "frames": n}
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    logger.info("built the frame cache of %s: %d frames x %d cameras in %s", ds.root, n, len(arrays), folder)
