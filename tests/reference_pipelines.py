"""A small random diffusers StableDiffusionPipeline saved with save_pretrained: the reference
that loader, pipeline and export tests compare against. Each test picks the UNet and VAE
architecture; the CLIP text model, tokenizer files (our shipped vocabulary) and DDIM scheduler
are SD-1.x's at a tiny width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from typer.testing import CliRunner

from sfmobile.bench.diffusers_baseline import sd_scheduler, sd_text_encoder, sd_tokenizer
from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.weights.diffusers_export import assemble

TINY_SIZE = 64  # the image side build_tiny_reference's pipeline runs at (latents 16 x 16)


def save_reference_pipeline(
    folder: Path, unet, vae, prediction_type: str = "epsilon"
) -> StableDiffusionPipeline:
    """Builds the pipeline around `unet` and `vae` and saves it to folder/"model"."""
    text_encoder = sd_text_encoder(hidden_size=32, intermediate_size=64, layers=2, heads=4)
    tokenizer = sd_tokenizer(folder / "vocab")
    pipe = assemble(unet, vae, text_encoder, tokenizer, sd_scheduler(prediction_type))
    pipe.save_pretrained(folder / "model")
    return pipe


def build_tiny_reference(folder: Path, prediction_type: str = "epsilon") -> StableDiffusionPipeline:
    """A seeded two-stage UNet (attention in the inner stage) and a three-stage VAE, saved to
    folder/"model": the pipeline the end-to-end parity tests run at TINY_SIZE."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        sample_size=TINY_SIZE // 4,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
    )
    return save_reference_pipeline(folder, unet, vae, prediction_type)


def diffusers_levels(image: np.ndarray) -> np.ndarray:
    """A diffusers `output_type="np"` image (floats in [0, 1]) as int16 8-bit levels."""
    return (image * 255).round().astype(np.int16)


def generate_with_cli(args: list[str], out: Path) -> np.ndarray:
    """Run `sfmobile generate ARGS --out OUT` in-process; the written picture as int16 levels."""
    _register_commands()
    result = CliRunner().invoke(app, ["generate", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(out).convert("RGB")).astype(np.int16)


def assert_same_picture(actual: np.ndarray, expected: np.ndarray) -> None:
    """99.9% of the levels within one of the reference's, and the reference a real picture (not
    a flat field)."""
    assert (np.abs(actual - expected) <= 1).mean() >= 0.999
    assert np.std(expected) > 1.0
