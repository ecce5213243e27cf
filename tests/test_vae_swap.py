"""Decoder fine-tuning (`train vae --init --freeze-encoder`) and `sfmobile swap-vae`, on tiny
models for a few steps.

References: the init VAE's own tensors (the encoder must come back bit-identical, the decoder
must move), our checkpoint reader for the swapped model, and the new VAE's decode of the same
latents for what the swapped model draws.
"""

from dataclasses import replace

import pytest
import tiny_models
import torch
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.config import ModelConfig
from sfmobile.errors import CheckpointError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.scheduler import SchedulerConfig
from sfmobile.train.assembly.vae_swap import swap_vae
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.stages.vae import VaeStage, load_vae, save_vae
from sfmobile.weights.sfmobile_checkpoint import load_checkpoint, save_checkpoint

TINY_VAE = tiny_models.vae(scaling_factor=0.37)
TINY_UNET = tiny_models.unet()
TINY_TEXT = tiny_models.TEXT


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def base_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(TINY_VAE).eval()


@pytest.fixture(scope="module")
def finetuned(base_vae, tmp_path_factory) -> AutoencoderKL:
    out = tmp_path_factory.mktemp("vae-ft")
    stage = VaeStage(TINY_VAE, init=base_vae, freeze_encoder=True)
    config = TrainConfig(out=out, steps=3, batch_size=2, log_every=1, checkpoint_every=100)
    assert Trainer(stage, config).run().finished
    return load_vae(out)


def tiny_model(vae: AutoencoderKL) -> StableDiffusion:
    torch.manual_seed(1)
    config = ModelConfig(unet=TINY_UNET, text_encoder=TINY_TEXT, vae=vae.config)
    model = StableDiffusion(
        config=config,
        unet=UNet(TINY_UNET),
        text_encoder=TextEncoder(TINY_TEXT),
        vae=AutoencoderKL(vae.config),
        scheduler=SchedulerConfig(prediction_type="v_prediction"),
        source="tiny",
    )
    model.vae.load_state_dict(vae.state_dict())
    return model.eval()


def test_frozen_encoder_comes_back_bit_identical_and_the_decoder_moves(base_vae, finetuned):
    for key, tensor in base_vae.encoder.state_dict().items():
        assert torch.equal(finetuned.encoder.state_dict()[key], tensor), key
    moved = [
        key
        for key, tensor in base_vae.decoder.state_dict().items()
        if not torch.equal(finetuned.decoder.state_dict()[key], tensor)
    ]
    assert len(moved) > len(base_vae.decoder.state_dict()) // 2


def test_decoder_fine_tuning_keeps_the_scaling_factor_the_unet_was_trained_with(finetuned):
    assert finetuned.config.scaling_factor == TINY_VAE.scaling_factor


def test_freeze_encoder_without_init_is_refused():
    with pytest.raises(
        InputError, match=r"freeze_encoder \(--freeze-encoder\) needs init \(--init\)"
    ):
        VaeStage(TINY_VAE, freeze_encoder=True)


def test_swapped_model_keeps_unet_and_text_encoder_and_draws_with_the_new_decoder(
    base_vae, finetuned
):
    model = tiny_model(base_vae)
    swapped = swap_vae(model, finetuned, "ft")
    for name in ("unet", "text_encoder"):
        ours, theirs = getattr(model, name).state_dict(), getattr(swapped, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        drawn, expected = swapped.vae.decode(latents), finetuned.decode(latents)
        old = model.vae.decode(latents)
    assert torch.equal(drawn, expected)
    assert not torch.allclose(drawn, old)
    assert swapped.config.vae == finetuned.config


def test_swap_refuses_a_vae_with_another_encoder(base_vae):
    torch.manual_seed(7)
    stranger = AutoencoderKL(TINY_VAE)
    with pytest.raises(CheckpointError, match=r"--vae other .*encoder weight \S+ differs"):
        swap_vae(tiny_model(base_vae), stranger, "other")


def test_swap_refuses_a_vae_with_another_scaling_factor(base_vae):
    rescaled = AutoencoderKL(replace(TINY_VAE, scaling_factor=0.5))
    rescaled.load_state_dict(base_vae.state_dict())
    with pytest.raises(CheckpointError, match="scaling_factor"):
        swap_vae(tiny_model(base_vae), rescaled, "rescaled")


def test_swap_vae_command_writes_a_checkpoint_that_loads(base_vae, finetuned, tmp_path):
    save_checkpoint(tiny_model(base_vae), tmp_path / "model")
    save_vae(finetuned, tmp_path / "vae")
    _register_commands()
    args = ["--model", tmp_path / "model", "--vae", tmp_path / "vae", "--out", tmp_path / "out"]
    result = CliRunner().invoke(app, ["swap-vae", *map(str, args)])
    assert result.exit_code == 0, result.output
    loaded = load_checkpoint(tmp_path / "out")
    for key, tensor in finetuned.state_dict().items():
        assert torch.equal(loaded.vae.state_dict()[key], tensor), key


def test_swap_vae_command_names_a_missing_path(tmp_path):
    _register_commands()
    args = ["--model", tmp_path / "nope", "--vae", tmp_path, "--out", tmp_path / "out"]
    result = CliRunner().invoke(app, ["swap-vae", *map(str, args)])
    assert result.exit_code == 2
    assert "--model" in result.output and "nope" in result.output


def test_freeze_encoder_without_init_exits_2_naming_both_flags(tmp_path):
    _register_commands()
    args = ["train", "vae", "--freeze-encoder", "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--freeze-encoder" in result.output and "--init" in result.output
    assert not (tmp_path / "run" / "vae").exists()
