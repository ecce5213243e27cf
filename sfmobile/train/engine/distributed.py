"""One process or many (torchrun) through the same calls: the Trainer never branches on it.

Under `torchrun --nproc_per_node=N` (WORLD_SIZE > 1 in the environment) `start()` joins the
process group: NCCL when the run is on CUDA (each process on its own GPU, cuda:LOCAL_RANK), gloo
on the CPU. Alone it joins nothing and every collective below is the identity.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sfmobile.train.engine.device import resolve_device


@dataclass(frozen=True)
class Ranks:
    """This process's place: rank in [0, world_size); rank 0 writes every file. device: where
    this process computes (and where its collectives' tensors live)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(device: str = "cpu") -> Ranks:
    """Join the process group torchrun describes (env WORLD_SIZE, RANK, LOCAL_RANK,
    MASTER_ADDR/PORT), on `device` (a --device value: cpu, cuda, cuda:N, auto)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device, distributed=world_size > 1)
    if world_size <= 1:
        return Ranks(device=resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), resolved)


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
    device_ids = [ranks.device] if ranks.device.type == "cuda" else None
    return DistributedDataParallel(
        module,
        device_ids=device_ids,
        forward_sync_buffers=False,
        find_unused_parameters=skips_blocks,
    )


def no_sync(module: nn.Module) -> contextlib.AbstractContextManager:
    """Within it, backward accumulates gradients locally without the all-reduce (the micro-
    batches of a step but its last, under --grad-accumulation); the identity alone."""
    if isinstance(module, DistributedDataParallel):
        return module.no_sync()
    return contextlib.nullcontext()


def mean_over_ranks(values: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must call this at the same step)."""
    if not ranks.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ranks.device)
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
    tensor = torch.tensor([int(flag) for flag in flags], device=ranks.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(value) for value in tensor.tolist()]


def params_sha256(modules: Mapping[str, nn.Module]) -> str:
    """Fingerprint of the modules' weights: ranks in step give identical strings."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        for key, tensor in modules[name].state_dict().items():
            digest.update(f"{name}.{key}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
