"""Initialising an efficient UNet (e.g. the `snapfusion` preset) from SD-1.5 weights.

Blocks are matched by position: our unit `down_stages.i.units.j` takes the SD-1.5 unit of the
same name unless UNIT_SOURCES says otherwise. Inside a matched block every tensor with the same
name and shape is copied (a depth-3 transformer takes SD-1.5's projections and first block);
everything else keeps its fresh initialisation. The report says which is which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sfmobile.config import UNetConfig
from sfmobile.models.unet import UNet

# snapfusion unit -> SD-1.5 unit it is initialised from, where the positions differ. Up-1's second
# ResNet pops the 640-channel skip, as SD-1.5's third one (up_stages.1.units.2) does.
UNIT_SOURCES = {"up_stages.1.units.1.": "up_stages.1.units.2."}


@dataclass
class InitReport:
    """Tensor names (ours) copied from SD-1.5 and freshly initialised."""

    copied: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def blocks(self, names: list[str]) -> list[str]:
        """The distinct blocks (units, samplers, stems) the names belong to."""
        return sorted({_block_of(name) for name in names})

    def summary(self) -> str:
        return (
            f"copied {len(self.copied)} tensors "
            f"({len(self.blocks(self.copied))} blocks) from SD-1.5, "
            f"fresh {len(self.fresh)} tensors in: {', '.join(self.blocks(self.fresh)) or 'none'}"
        )


def _block_of(name: str) -> str:
    parts = name.split(".")
    if parts[0] in ("down_stages", "up_stages"):
        end = 5 if parts[2] == "units" else 3
        return ".".join(parts[:end])
    if parts[0] == "mid":
        return ".".join(parts[:4])
    return parts[0]


def _source_name(name: str) -> str:
    for ours, theirs in UNIT_SOURCES.items():
        if name.startswith(ours):
            return theirs + name[len(ours) :]
    return name


def init_from_sd15(config: UNetConfig, sd15: UNet, seed: int = 0) -> tuple[UNet, InitReport]:
    """A UNet of `config` with every block SD-1.5 also has copied from `sd15`."""
    torch.manual_seed(seed)
    unet = UNet(config)
    source = sd15.state_dict()
    report = InitReport()
    state = unet.state_dict()
    for name, tensor in state.items():
        theirs = source.get(_source_name(name))
        if theirs is not None and theirs.shape == tensor.shape:
            state[name] = theirs.clone()
            report.copied.append(name)
        else:
            report.fresh.append(name)
    unet.load_state_dict(state)
    return unet, report
