"""The models a benchmark times, rebuilt identically in every child process from a small
description: the model under test (a preset with random weights, or a checkpoint), with
SnapFusion's half-channel decoder or a guidance input swapped in (random weights), or the
reference preset (the SD-1.5 layout at the same scale)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sfmobile.config import VAEConfig

if TYPE_CHECKING:  # torch only where a model is built: bundle cases' memory stays their own
    from sfmobile.models.stable_diffusion import StableDiffusion

SEED = 0
# variant -> (which model, decoder halved, guidance input, CFG batch of its bundle)
VARIANTS = {
    "b2-half": ("model", True, False, 2),
    "b1-full": ("model", False, False, 1),
    "reference": ("reference", False, False, 2),
    "guided": ("model", True, True, 1),
}


@dataclass(frozen=True)
class Source:
    """preset: the architecture (random weights unless checkpoint is given);
    reference: the preset compared against (the SD-1.5 layout at this scale)."""

    preset: str | None
    checkpoint: str | None
    reference: str

    @property
    def random_weights(self) -> bool:
        return self.checkpoint is None

    def to_dict(self) -> dict:
        return {"preset": self.preset, "checkpoint": self.checkpoint, "reference": self.reference}


def build(source: Source, variant: str) -> StableDiffusion:
    """The variant's model; random parts are seeded so every process builds the same weights."""
    import torch

    from sfmobile.models.random_init import random_model
    from sfmobile.models.unet import UNet
    from sfmobile.models.vae import AutoencoderKL

    which, halve_decoder, guided, _ = VARIANTS[variant]
    if which == "reference":
        return random_model(source.reference, seed=SEED)
    if source.checkpoint:
        from sfmobile.weights import load_model

        model = load_model(Path(source.checkpoint), source.preset)
    else:
        model = random_model(source.preset or "snapfusion", seed=SEED)
    config = model.config
    if halve_decoder:
        config = replace(config, vae=half_decoder(config.vae))
        torch.manual_seed(SEED + 1)
        model.vae = AutoencoderKL(config.vae)
    if guided:
        config = replace(config, unet=replace(config.unet, guidance_embedding=True))
        torch.manual_seed(SEED + 2)
        model.unet = UNet(config.unet)
    model.config = config
    return model.eval()


def half_decoder(vae: VAEConfig) -> VAEConfig:
    """SnapFusion's half-channel decoder (VAEConfig.pruned); where halving leaves fewer channels
    than norm groups (the tiny preset's 32 -> 16 under 32 groups), the groups shrink to fit."""
    groups = math.gcd(vae.norm_groups, *(c // 2 for c in vae.decoder_channels))
    return replace(vae, norm_groups=groups).pruned()


def cfg_batch(variant: str) -> int:
    return VARIANTS[variant][3]
