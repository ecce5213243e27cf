"""`sfmobile convert --to diffusers`: diffusers' StableDiffusionPipeline loads the folder and
draws sfmobile's image (within one 8-bit level) from the same initial latents; our own loader
reads back the same tensors; layouts no stock diffusers class has are refused before writing."""

from dataclasses import replace

import numpy as np
import pytest
import tiny_models
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import ConfigError
from sfmobile.models.random_init import random_model
from sfmobile.models.unet import UNet
from sfmobile.noise import gaussian_noise
from sfmobile.presets import PRESET_NAMES, preset
from sfmobile.train.stages.teacher import teacher_scheduler
from sfmobile.weights import load_model
from sfmobile.weights.diffusers_export import (
    CONVERTIBLE_PRESETS,
    text_encoder_to_transformers,
    unet_to_diffusers,
    vae_to_diffusers,
)
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32
PROMPT = "a small red circle above a blue square"


def invoke(*args: str):
    _register_commands()
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_diffusers_draws_sfmobiles_image_from_the_converted_folder(tmp_path, prediction):
    model = random_model("tiny", seed=3)
    if prediction == "v_prediction":  # what `sfmobile train teacher` writes: v, trailing spacing
        model = replace(model, scheduler=teacher_scheduler())
    save_checkpoint(model, tmp_path / "ours")
    result = invoke("convert", "--to", "diffusers", "--model", str(tmp_path / "ours"),
                    "--out", str(tmp_path / "diffusers"))  # fmt: skip
    assert result.exit_code == 0, result.output

    latent = SIZE // model.config.vae.downscale
    latents = gaussian_noise(7, (1, 4, latent, latent))
    np.save(tmp_path / "latents.npy", latents)
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "diffusers")
    expected = pipe(PROMPT, num_inference_steps=4, guidance_scale=7.5, height=SIZE, width=SIZE,
                    latents=torch.from_numpy(latents), output_type="np").images[0]  # fmt: skip
    expected = (expected * 255).round().astype(np.int16)
    result = invoke("generate", "--model", str(tmp_path / "ours"), "--prompt", PROMPT,
                    "--steps", "4", "--guidance", "7.5", "--height", str(SIZE), "--width",
                    str(SIZE), "--init-latents", str(tmp_path / "latents.npy"),
                    "--out", str(tmp_path / "ours.png"))  # fmt: skip
    assert result.exit_code == 0, result.output
    actual = np.asarray(Image.open(tmp_path / "ours.png").convert("RGB")).astype(np.int16)
    assert (np.abs(actual - expected) <= 1).mean() >= 0.999
    assert np.std(expected) > 1.0  # a real picture, not a flat field

    back = load_model(tmp_path / "diffusers")
    assert back.config == model.config and back.scheduler.prediction_type == prediction
    for name, module in model.modules().items():
        theirs = getattr(back, name).state_dict()
        for key, tensor in module.state_dict().items():
            assert torch.equal(theirs[key], tensor), f"{name}.{key}"


def convertible(name: str) -> bool:
    config = preset(name)
    try:
        unet_to_diffusers(config.unet)
        vae_to_diffusers(config.vae)
        text_encoder_to_transformers(config.text_encoder)
    except ConfigError:
        return False
    return True


def test_the_sd15_layout_converts_and_snapfusion_is_refused():
    config = unet_to_diffusers(preset("sd15").unet)
    assert config["down_block_types"][-1] == "DownBlock2D"
    assert config["layers_per_block"] == [2, 2, 2, 2]
    assert tuple(n for n in PRESET_NAMES if convertible(n)) == CONVERTIBLE_PRESETS
    with pytest.raises(ConfigError, match="not expressible as a stock diffusers"):
        unet_to_diffusers(preset("snapfusion").unet)
    with pytest.raises(ConfigError, match="compressed decoder"):
        vae_to_diffusers(preset("snapfusion-pruned-decoder").vae)


def test_cli_refuses_a_unet_diffusers_has_no_class_for_and_writes_nothing(tmp_path):
    model = random_model("tiny")
    odd = tiny_models.unet(32, 64)  # its middle is one ResNet + attention, not diffusers' two
    odd = replace(odd, cross_attention_dim=model.config.text_encoder.width)
    model = replace(model, config=replace(model.config, unet=odd), unet=UNet(odd))
    save_checkpoint(model, tmp_path / "odd")
    result = invoke("convert", "--to", "diffusers", "--model", str(tmp_path / "odd"),
                    "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 2
    assert "not expressible as a stock diffusers UNet (mid is" in result.output
    assert "Presets that convert: sd15, tiny" in result.output
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "odd"]
