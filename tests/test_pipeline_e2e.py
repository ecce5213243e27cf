"""`sfmobile generate` on a diffusers pipeline folder gives diffusers' StableDiffusionPipeline
image, from the same initial latents."""

import numpy as np
import pytest
import torch
from reference_pipelines import (
    TINY_SIZE,
    assert_same_picture,
    build_tiny_reference,
    diffusers_levels,
    generate_with_cli,
)

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
    expected = diffusers_levels(expected)

    actual = generate_with_cli(
        [
            "--model", str(tmp_path / "model"),
            "--prompt", PROMPT,
            "--steps", "8",
            "--guidance", str(guidance),
            "--height", str(SIZE),
            "--width", str(SIZE),
            "--init-latents", str(tmp_path / "latents.npy"),
        ],
        tmp_path / "ours.png",
    )  # fmt: skip
    assert_same_picture(actual, expected)
