"""One process or many (torchrun) through the same calls: the Trainer never branches on it.

Under `torchrun --nproc_per_node=N` (WORLD_SIZE > 1 in the environment) `start()` joins a gloo
process group (CPU training); alone it does nothing and every collective below is the identity.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Ranks:
    """This process's place: rank in [0, world_size); rank 0 writes every file."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start() -> Ranks:
    """Join the process group torchrun describes (env WORLD_SIZE, RANK, MASTER_ADDR/PORT)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def stop(ranks: Ranks) -> None:
    """Leave the process group (after every rank is done with the files)."""
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(module: nn.Module, ranks: Ranks, skips_blocks: bool = False) -> nn.Module:
    """The module as training calls it: DistributedDataParallel (gradients averaged across ranks
    during backward, rank 0's initial weights broadcast to all) or the module itself.
    skips_blocks: some parameters may go unused in a step (robust training)."""
    if not ranks.distributed:
        return module
    # Buffers here are constants (timestep frequencies, causal masks): synced once, at init.
    return DistributedDataParallel(
        module, forward_sync_buffers=False, find_unused_parameters=skips_blocks
    )


def mean_over_ranks(values: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must call this at the same step)."""
    if not ranks.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / ranks.world_size for k, v in zip(keys, tensor.tolist(), strict=True)}


def gather(value: Any, ranks: Ranks) -> list[Any]:
    """[rank 0's value, rank 1's, ...] on every rank (small picklable values only)."""
    if not ranks.distributed:
        return [value]
    gathered: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def any_rank(flags: list[bool], ranks: Ranks) -> list[bool]:
    """Each flag true on every rank if it is true on any (so all ranks stop at the same step)."""
    if not ranks.distributed:
        return list(flags)
    tensor = torch.tensor([int(flag) for flag in flags])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(value) for value in tensor.tolist()]


def params_sha256(modules: Mapping[str, nn.Module]) -> str:
    """Fingerprint of the modules' weights: ranks in step give identical strings."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, tensor in modules[name].state_dict().items():
            digest.update(f"{name}.{key}".encode())
            digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()
