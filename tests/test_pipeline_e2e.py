"""`sfmobile generate` on a diffusers pipeline folder gives diffusers' StableDiffusionPipeline
image, from the same initial latents."""

import numpy as np
import pytest
import torch
from PIL import Image
from reference_pipelines import TINY_SIZE, build_tiny_reference
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.noise import gaussian_noise

SIZE = TINY_SIZE
PROMPT = "a small red circle above a blue square"


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("guidance", [1.0, 7.5], ids=["no-guidance", "guidance"])
def test_generate_matches_diffusers_pipeline(tmp_path, prediction_type, guidance):
    reference = build_tiny_reference(tmp_path, prediction_type)
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
