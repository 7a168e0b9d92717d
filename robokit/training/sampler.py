"""A resumable, shardable sampler: the data order is a function of (seed, epoch), the position a
function of the number of samples consumed, so a resumed run sees exactly the batches it would
have seen."""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Endless shuffled passes over `indices`; process `rank` of `world_size` takes every world_size-th item."""

    def __init__(self, indices: Sequence[int], seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        if len(indices) < world_size:
            raise ValueError(f"{len(indices)} samples cannot be split over {world_size} processes")
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.per_rank = len(self.indices) // world_size  # equal shards (the tail of each pass is dropped)
        self.start = start  # samples this rank already consumed

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed + epoch)
        perm = self.indices[torch.randperm(len(self.indices), generator=g)]
        return perm[self.rank : self.per_rank * self.world_size : self.world_size]

    def __iter__(self) -> Iterator[int]:
        position = self.start
        while True:
            epoch, offset = divmod(position, self.per_rank)
            for index in self.order(epoch)[offset:].tolist():
                yield index
            position = (epoch + 1) * self.per_rank

    def __len__(self) -> int:
        return self.per_rank


def training_indices(dataset, drop_n_last_frames: int = 0) -> list[int]:
    """All frame indices, without the last `drop_n_last_frames` of each episode."""
    n = len(dataset)
    if drop_n_last_frames <= 0 or not hasattr(dataset, "episode_ranges"):
        return list(range(n))
    out = []
    for start, end in dataset.episode_ranges:
        out.extend(range(int(start), max(int(start) + 1, int(end) - drop_n_last_frames)))
    return out
