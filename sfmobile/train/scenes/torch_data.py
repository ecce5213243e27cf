"""torch Dataset wrappers around SceneGenerator, for DataLoader and DDP (torchrun) training.

Each item is a dict: "image" float32 3 x size x size in [-1, 1], "caption" str, "index" int;
the default collate makes that a 3-D-batch tensor, a list of captions and an index tensor.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from sfmobile.errors import InputError
from sfmobile.train.scenes.generator import SceneGenerator, shard_indices


def _item(generator: SceneGenerator, index: int) -> dict:
    sample = generator[index]
    return {
        "image": torch.from_numpy(sample.model_input()),
        "caption": sample.caption,
        "index": index,
    }


class SceneStream(IterableDataset):
    """The infinite training stream of one DDP rank.

    Rank r draws scene indices r, r + world_size, r + 2*world_size, ... starting at its
    `start`-th one; DataLoader workers deal those out round-robin (data.shard_indices), so after
    any whole number of rounds over the workers a rank has consumed exactly the first
    (batches * batch_size) of its indices: resume with start = samples this rank consumed.
    rank/world_size default to torch.distributed's when it is initialised, else 0 and 1.
    """

    def __init__(
        self,
        split: str = "train",
        seed: int = 0,
        size: int = 64,
        rank: int | None = None,
        world_size: int | None = None,
        start: int = 0,
    ) -> None:
        super().__init__()
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if rank is None:
            rank = torch.distributed.get_rank() if distributed else 0
        if world_size is None:
            world_size = torch.distributed.get_world_size() if distributed else 1
        if not 0 <= rank < world_size:
            raise InputError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.generator = SceneGenerator(split=split, seed=seed, size=size)
        self.rank, self.world_size, self.start = rank, world_size, start

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for index in shard_indices(self.rank, self.world_size, worker, num_workers, self.start):
            yield _item(self.generator, index)


class SceneDataset(Dataset):
    """A finite map-style view: scenes 0..length-1 of one split (evaluation, DistributedSampler)."""

    def __init__(self, split: str = "heldout", seed: int = 0, size: int = 64, length: int = 200):
        if length < 1:
            raise InputError(f"length must be at least 1, got {length}")
        self.generator = SceneGenerator(split=split, seed=seed, size=size)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(f"scene index {index} out of range [0, {self.length})")
        return _item(self.generator, index)
