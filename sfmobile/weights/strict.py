"""Renaming a checkpoint's tensors onto our modules, strictly.

Every tensor of the checkpoint must be used and every parameter filled; otherwise one error lists
the missing, unexpected and mis-shaped keys (the first few of each, with counts) and the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from sfmobile.errors import CheckpointError

SHOWN_PER_KIND = 5


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

    A checkpoint tensor of shape [O, I, 1, 1] fills a Linear weight [O, I] and vice versa: SD's
    original code stores some projections as 1x1 convolutions.
    """
    expected = module.state_dict()
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
        ready[key] = tensor.to(target.dtype)
    if missing or unexpected or mis_shaped:
        raise CheckpointError(mismatch_report(source, missing, unexpected, mis_shaped))
    module.load_state_dict(ready, strict=True)


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
