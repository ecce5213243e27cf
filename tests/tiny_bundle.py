"""One small sfmobile checkpoint and its fp32 ONNX bundle per test process (tests/tiny_models
sizes, 32x32 images), built once and copied by every test that changes them."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path

import tiny_models
import torch

from sfmobile.config import ModelConfig
from sfmobile.export.bundle_export import export_bundle
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.scheduler import SchedulerConfig
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

IMAGE_SIZE = 32


def tiny_model(seed: int = 0) -> StableDiffusion:
    torch.manual_seed(seed)
    config = ModelConfig(
        unet=tiny_models.unet(), text_encoder=tiny_models.TEXT, vae=tiny_models.vae()
    )
    return StableDiffusion(
        config=config,
        unet=UNet(config.unet),
        text_encoder=TextEncoder(config.text_encoder),
        vae=AutoencoderKL(config.vae),
        scheduler=SchedulerConfig(default_steps=2),
        source="tiny random",
    ).eval()


@cache
def tiny_sources() -> tuple[Path, Path]:
    """(checkpoint folder, ONNX bundle folder) of one tiny model; read-only by convention."""
    root = Path(tempfile.mkdtemp(prefix="sfmobile-tiny-bundle-"))
    atexit.register(shutil.rmtree, root, True)
    model = tiny_model()
    save_checkpoint(model, root / "checkpoint")
    export_bundle(model, root / "bundle", "onnx", "fp32", None, IMAGE_SIZE, IMAGE_SIZE)
    return root / "checkpoint", root / "bundle"
