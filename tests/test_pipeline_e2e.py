"""`sfmobile generate` on a diffusers pipeline folder gives diffusers' StableDiffusionPipeline
image, from the same initial latents."""

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from reference_pipelines import save_reference_pipeline
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.noise import gaussian_noise

SIZE = 64
PROMPT = "a small red circle above a blue square"


def build_reference(folder, prediction_type: str) -> StableDiffusionPipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        sample_size=SIZE // 4,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
    )
    return save_reference_pipeline(folder, unet, vae, prediction_type)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("guidance", [1.0, 7.5], ids=["no-guidance", "guidance"])
def test_generate_matches_diffusers_pipeline(tmp_path, prediction_type, guidance):
    reference = build_reference(tmp_path, prediction_type)
    latents = gaussian_noise(7, (1, 4, SIZE // 4, SIZE // 4))
    np.save(tmp_path / "latents.npy", latents)
    expected = reference(
        PROMPT,
        num_inference_steps=8,
        guidance_scale=guidance,
        height=SIZE,
        width=SIZE,
        latents=torch.from_numpy(latents),
        output_type="np",
    ).images[0]
    expected = (expected * 255).round().astype(np.int16)

    _register_commands()
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--model", str(tmp_path / "model"),
            "--prompt", PROMPT,
            "--steps", "8",
            "--guidance", str(guidance),
            "--height", str(SIZE),
            "--width", str(SIZE),
            "--init-latents", str(tmp_path / "latents.npy"),
            "--out", str(tmp_path / "ours.png"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    actual = np.asarray(Image.open(tmp_path / "ours.png").convert("RGB")).astype(np.int16)
    within_one_level = np.abs(actual - expected) <= 1
    assert within_one_level.mean() >= 0.999
    assert np.std(expected) > 1.0  # a real picture, not a flat field
