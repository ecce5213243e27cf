"""A whole model of a preset with random weights (PyTorch's default initialisation)."""

from __future__ import annotations

import torch

from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.presets import preset
from sfmobile.scheduler import SchedulerConfig


def random_model(preset_name: str, seed: int = 0) -> StableDiffusion:
    config = preset(preset_name)
    torch.manual_seed(seed)
    return StableDiffusion(
        config=config,
        unet=UNet(config.unet),
        text_encoder=TextEncoder(config.text_encoder),
        vae=AutoencoderKL(config.vae),
        scheduler=SchedulerConfig(),
        source=f"random:{preset_name}:{seed}",
    ).eval()
