"""Renaming a checkpoint's tensors onto our modules, strictly.

Every tensor of the checkpoint must be used and every parameter filled; otherwise one error lists
the missing, unexpected and mis-shaped keys (the first few of each, with counts) and the file.

The checkpoint loaders build their modules on the meta device (`build_empty`: no memory, no random
initialisation) and load_strict then makes the checkpoint's tensors the parameters themselves
(`assign`), so a full-size model is never held twice. Buffers no checkpoint carries (the
timestep frequencies, the causal mask) are computed on the CPU when the module is built; any
tensor still on the meta device after loading is an error naming it, never a silent placeholder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any, TypeVar

import torch
from torch import nn

from sfmobile.errors import CheckpointError

SHOWN_PER_KIND = 5
M = TypeVar("M", bound=nn.Module)


def build_empty(build: Callable[[Any], M], config: Any) -> M:
    """`build(config)` with its parameters on the meta device (shapes and dtypes only), for
    load_strict to fill by assignment."""
    with torch.device("meta"):
        return build(config)


def rename(
    tensors: Mapping[str, torch.Tensor], key_map: Mapping[str, str]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Apply `key_map` (their key -> our key); return the renamed tensors and unmapped keys."""
    renamed, unexpected = {}, []
    for key, tensor in tensors.items():
        if key in key_map:
            renamed[key_map[key]] = tensor
        else:
            unexpected.append(key)
    return renamed, unexpected


def load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    unexpected: Iterable[str] = (),
) -> None:
    """Fill every parameter and buffer of `module` from `state` (our names) or raise.

    A module built by build_empty (on the meta device) takes the tensors themselves (cast to
    its dtype where they differ; a view of a larger storage, a shared or non-contiguous tensor is
    copied first); any other module copies them into its own. A checkpoint tensor of shape
    [O, I, 1, 1] fills a Linear weight [O, I] and vice versa: SD's original code stores some
    projections as 1x1 convolutions.
    """
    expected = module.state_dict()
    assign = any(tensor.is_meta for tensor in expected.values())
    claimed: set[int] = set()
    unexpected = list(unexpected) + [key for key in state if key not in expected]
    missing = [key for key in expected if key not in state]
    mis_shaped, ready = [], {}
    for key, tensor in state.items():
        if key not in expected:
            continue
        target = expected[key]
        if tensor.shape != target.shape:
            if tensor.numel() != target.numel() or _strip_ones(tensor.shape) != _strip_ones(
                target.shape
            ):
                mis_shaped.append(f"{key} {tuple(tensor.shape)} vs {tuple(target.shape)}")
                continue
            tensor = tensor.reshape(target.shape)
        tensor = tensor.to(target.dtype)
        ready[key] = _own_storage(tensor, claimed) if assign else tensor
    if missing or unexpected or mis_shaped:
        raise CheckpointError(mismatch_report(source, missing, unexpected, mis_shaped))
    module.load_state_dict(ready, strict=True, assign=assign)
    check_materialised(module, source)


def _own_storage(tensor: torch.Tensor, claimed: set[int]) -> torch.Tensor:
    """`tensor` if it is contiguous and alone in a storage no other parameter took (ids of
    storages in `claimed`), else a copy: assigned parameters must not alias each other."""
    storage = tensor.untyped_storage()
    alone = storage.nbytes() == tensor.nbytes and tensor.storage_offset() == 0
    if not (tensor.is_contiguous() and alone) or storage.data_ptr() in claimed:
        tensor = tensor.clone(memory_format=torch.contiguous_format)
    claimed.add(tensor.untyped_storage().data_ptr())
    return tensor


def check_materialised(module: nn.Module, source: str) -> None:
    """Raise naming every parameter or buffer of `module` still on the meta device (a buffer a
    module type computes without saying `device="cpu"`, built by build_empty: a bug to fix in the
    module, never a silently empty tensor)."""
    left = [
        name
        for name, tensor in chain(module.named_parameters(), module.named_buffers())
        if tensor.is_meta
    ]
    if left:
        raise RuntimeError(
            f"{source}: {type(module).__name__} has {len(left)} tensors with no data after "
            f"loading (still on the meta device): {', '.join(left[:SHOWN_PER_KIND])}; a buffer "
            "that checkpoints do not carry must be computed with device='cpu' in its module"
        )


def _strip_ones(shape: torch.Size) -> tuple[int, ...]:
    dims = list(shape)
    while dims and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def mismatch_report(
    source: str, missing: list[str], unexpected: list[str], mis_shaped: list[str]
) -> str:
    parts = []
    for kind, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped", mis_shaped),
    ):
        if keys:
            shown = ", ".join(keys[:SHOWN_PER_KIND])
            more = (
                f", ... (+{len(keys) - SHOWN_PER_KIND} more)" if len(keys) > SHOWN_PER_KIND else ""
            )
            parts.append(f"{len(keys)} {kind}: {shown}{more}")
    return f"{source}: checkpoint does not match the architecture; " + "; ".join(parts)


def first_difference(ours: nn.Module, theirs: nn.Module) -> str | None:
    """None when both modules hold the same tensors under the same names, bit for bit; else
    what differs first ("names differ" or the name of the first unequal tensor)."""
    a, b = ours.state_dict(), theirs.state_dict()
    if a.keys() != b.keys():
        return "names differ"
    for key, tensor in a.items():
        if tensor.shape != b[key].shape or not torch.equal(tensor, b[key]):
            return key
    return None
