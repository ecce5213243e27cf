"""SnapFusion's robust training (section 3.2): during a training step each cross-attention
transformer and each ResNet block whose input and output channels agree is skipped (replaced by
the identity) with probability p, so the UNet learns to work with blocks missing; the
architecture evolution then measures which blocks it can do without.

Skipping is done from outside the model (the modules' forward temporarily replaced for one
call), so models/unet.py and every export path stay as they are. Skipped blocks get no gradient
in that step; under torchrun the Trainer then wraps the module with find_unused_parameters
(a stage that skips says so with `skips_blocks = True`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from sfmobile.models.layers import ResnetBlock, SpatialTransformer


def skippable_blocks(unet: nn.Module) -> list[str]:
    """Names of the blocks robust training may skip: every transformer, and the ResNets that
    keep their channel count (no 1x1 shortcut), in module order."""
    return [
        name
        for name, module in unet.named_modules()
        if isinstance(module, SpatialTransformer)
        or (isinstance(module, ResnetBlock) and module.conv_shortcut is None)
    ]


def draw_skips(names: list[str], probability: float, generator: torch.Generator) -> list[str]:
    """The blocks skipped this step: each independently with `probability`."""
    if probability <= 0 or not names:
        return []
    draws = torch.rand(len(names), generator=generator).tolist()
    return [name for name, draw in zip(names, draws, strict=True) if draw < probability]


def _identity(x: torch.Tensor, *_: object) -> torch.Tensor:
    return x


@contextmanager
def skipping(unet: nn.Module, names: list[str]) -> Iterator[None]:
    """Within the block, the named submodules of `unet` return their input unchanged."""
    modules = [unet.get_submodule(name) for name in names]
    for module in modules:
        module.forward = _identity
    try:
        yield
    finally:
        for module in modules:
            del module.forward
