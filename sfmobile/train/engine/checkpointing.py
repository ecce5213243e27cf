"""Gradient checkpointing (`--gradient-checkpointing`): keep only the inputs of each UNet unit
(a ResNet block and its cross-attention transformer, models/unet.Unit) during the forward pass
and recompute the unit's activations in the backward pass, trading about a third more compute
for most of the activation memory of a high-resolution step.

Done from outside the model, as robust training's skipping is (stages/robust.py): each unit's
forward is replaced by a torch.utils.checkpoint call of the original, so models/unet.py and the
export paths stay as they are. A unit whose blocks robust training skips in this step is
recomputed with the same blocks skipped (the skip is an instance attribute on the block, gone
by the time backward runs, so the checkpoint puts it back for the recomputation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from sfmobile.models.unet import Unit


def unet_units(modules: dict[str, nn.Module]) -> list[Unit]:
    """Every UNet unit inside `modules`, in module order."""
    return [m for module in modules.values() for m in module.modules() if isinstance(m, Unit)]


@contextmanager
def checkpointing(modules: dict[str, nn.Module]) -> Iterator[int]:
    """Within it, every UNet unit inside `modules` checkpoints its forward (yields how many);
    after it the units are plain again (an export or evaluation sees the model as built)."""
    units = unet_units(modules)
    for unit in units:
        unit.forward = _checkpointed(unit)
    try:
        yield len(units)
    finally:
        for unit in units:
            del unit.forward


def _checkpointed(unit: Unit) -> Callable[..., torch.Tensor]:
    original = type(unit).forward.__get__(unit)

    def forward(*inputs: Any) -> torch.Tensor:
        if not torch.is_grad_enabled():  # evaluation: nothing to save memory on
            return original(*inputs)
        overrides = {child: child.__dict__["forward"] for child in _patched_children(unit)}

        def recompute(*args: Any) -> torch.Tensor:
            with _forwards(overrides):
                return original(*args)

        return checkpoint(recompute, *inputs, use_reentrant=False)

    return forward


def _patched_children(unit: Unit) -> list[nn.Module]:
    return [child for child in unit.children() if "forward" in child.__dict__]


@contextmanager
def _forwards(overrides: dict[nn.Module, Callable]) -> Iterator[None]:
    """The children's forward overrides of the original call, restored as they were after."""
    before = {child: child.__dict__.get("forward") for child in overrides}
    for child, forward in overrides.items():
        child.forward = forward
    try:
        yield
    finally:
        for child, forward in before.items():
            if forward is None:
                del child.forward
            else:
                child.forward = forward
