"""Stage 4, decoder compression, on a tiny random teacher for a few steps.

References: diffusers' AutoencoderKL (the parameter count of a half-channel decoder),
sampling.sample_latents called directly (the pool's latents), our VAE and checkpoint readers.
"""

import json
import math

import numpy as np
import pytest
import tiny_models
import torch
from diffusers import AutoencoderKL as DiffusersAutoencoderKL
from safetensors import safe_open
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.config import ModelConfig
from sfmobile.errors import ConfigError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.scheduler import SchedulerConfig
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.evaluation.decoder_report import psnr_db
from sfmobile.train.sampling import sample_latents
from sfmobile.train.scenes.generator import SceneGenerator
from sfmobile.train.scenes.torch_data import SceneDataset
from sfmobile.train.stages import latent_pool
from sfmobile.train.stages.decoder import DecoderStage, with_decoder
from sfmobile.train.stages.vae import load_vae
from sfmobile.weights.sfmobile_checkpoint import load_checkpoint, save_checkpoint

# norm_groups 4 keeps the half-channel decoder (4, 4, 8, 8) valid.
TINY_VAE = tiny_models.vae(norm_groups=4, scaling_factor=0.5)
TINY_UNET = tiny_models.unet(16, 32)
TINY_TEXT = tiny_models.TEXT
SCHEDULER = SchedulerConfig(
    prediction_type="v_prediction",
    timestep_spacing="trailing",
    default_steps=2,
    default_guidance=3.0,
)
POOL, STEPS, BATCH, HELDOUT = 8, 12, 4, 8


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A random tiny teacher checkpoint (8x8 latents for 64x64 images)."""
    torch.manual_seed(0)
    config = ModelConfig(unet=TINY_UNET, text_encoder=TINY_TEXT, vae=TINY_VAE)
    model = StableDiffusion(
        config, UNet(TINY_UNET), TextEncoder(TINY_TEXT), AutoencoderKL(TINY_VAE), SCHEDULER
    )
    folder = tmp_path_factory.mktemp("teacher") / "teacher"
    save_checkpoint(model, folder)
    return folder


def make_stage(teacher_dir, out, **overrides) -> DecoderStage:
    settings = {"pool_size": POOL, "heldout": HELDOUT}
    return DecoderStage(load_checkpoint(teacher_dir), out, **{**settings, **overrides})


def fixed_loss(stage: DecoderStage) -> float:
    batch = next(iter(torch.utils.data.DataLoader(SceneDataset("train", length=8), 8)))
    with torch.no_grad():
        loss, _ = stage.loss(stage.trainable(), batch, 0, torch.Generator().manual_seed(0))
    return loss.item()


@pytest.fixture(scope="module")
def trained(teacher_dir, tmp_path_factory):
    """A finished run: (out folder, loss on a fixed batch before and after training)."""
    out = tmp_path_factory.mktemp("decoder_run")
    stage = make_stage(teacher_dir, out)
    before = fixed_loss(stage)
    config = TrainConfig(out=out, steps=STEPS, batch_size=BATCH, lr=3e-3, checkpoint_every=100)
    result = Trainer(stage, config).run()
    assert result.finished
    return out, before, fixed_loss(stage)


def test_training_lowers_the_decoder_loss(trained) -> None:
    _, before, after = trained
    assert after < 0.7 * before


def test_decoder_folder_loads_with_the_pruned_config(trained) -> None:
    out, _, _ = trained
    assert load_vae(out / "decoder").config == TINY_VAE.pruned()


def test_decoder_keeps_the_teachers_encoder(trained, teacher_dir) -> None:
    vae, teacher = load_vae(out := trained[0] / "decoder"), load_checkpoint(teacher_dir).vae
    assert (out / "report.json").is_file()
    for key, tensor in teacher.encoder.state_dict().items():
        assert torch.equal(vae.encoder.state_dict()[key], tensor), key


def test_pruned_decoder_has_a_half_channel_diffusers_decoders_parameters(trained) -> None:
    reference = DiffusersAutoencoderKL(
        block_out_channels=(4, 4, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
    )
    expected = sum(
        p.numel() for m in (reference.decoder, reference.post_quant_conv) for p in m.parameters()
    )
    vae = load_vae(trained[0] / "decoder")
    assert sum(p.numel() for p in vae.decoder.parameters()) == expected


def test_report_counts_parameters_and_measures_psnr_and_speed(trained, teacher_dir) -> None:
    report = json.loads((trained[0] / "decoder" / "report.json").read_text())
    full = sum(p.numel() for p in load_checkpoint(teacher_dir).vae.decoder.parameters())
    pruned = sum(p.numel() for p in load_vae(trained[0] / "decoder").decoder.parameters())
    assert report["parameters"]["full_decoder"] == full
    assert report["parameters"]["pruned_decoder"] == pruned
    assert 0.2 < pruned / full < 0.32  # about a quarter (in/out convs scale linearly)
    assert report["heldout_latents"] == HELDOUT
    # the pooled PSNR (mean MSE over all images) lies between the worst image's and infinity,
    # and is finite: the half-channel decoder is not the full one
    assert report["psnr_db_worst_image"] <= report["psnr_db"] < math.inf
    seconds = report["decode_seconds"]
    assert seconds["speedup"] == pytest.approx(seconds["full"] / seconds["pruned"])


def test_psnr_is_ten_log10_of_peak_squared_over_mse() -> None:
    reference = np.zeros((2, 4, 4, 3), np.uint8)
    test = reference.copy()
    test[0, 0, 0, 0] = 255  # one pixel value off by 255: MSE = 255^2 / 96
    assert psnr_db(reference, test) == pytest.approx(10 * math.log10(96))
    assert psnr_db(reference, reference) == math.inf


def test_pool_latents_are_the_teachers_samples_for_their_seeds(trained, teacher_dir) -> None:
    with safe_open(str(trained[0] / "latent_pool.safetensors"), framework="pt") as file:
        latents, seeds = file.get_tensor("latents"), file.get_tensor("seeds").tolist()
    assert latents.shape == (POOL, 4, 8, 8) and len(set(seeds)) == POOL
    scenes = SceneGenerator("train", seed=0)
    captions = [scenes.scene(i).caption for i in range(3)]
    teacher = load_checkpoint(teacher_dir)
    expected = sample_latents(teacher, captions, seeds[:3], steps=2, guidance=3.0, latent_size=8)
    torch.testing.assert_close(latents[:3], expected, rtol=1e-5, atol=1e-5)


def test_latent_pool_is_reused_on_resume(teacher_dir, tmp_path, monkeypatch) -> None:
    _register_commands()
    runner = CliRunner()
    args = ["train", "decoder", "--teacher", str(teacher_dir), "--out", str(tmp_path)]
    args += ["--steps", "3", "--batch-size", "2", "--pool-size", str(POOL), "--threads", "1"]
    first = runner.invoke(app, [*args, "--stop-after", "1"])
    assert first.exit_code == 0, first.output
    pool = tmp_path / "latent_pool.safetensors"
    written = pool.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("the latent pool was generated again")

    monkeypatch.setattr(latent_pool, "generate_latents", refuse)
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert pool.stat().st_mtime_ns == written
    assert (tmp_path / "decoder" / "report.json").is_file()


def test_pool_made_with_another_size_is_refused(trained, teacher_dir) -> None:
    with pytest.raises(InputError, match="count"):
        make_stage(teacher_dir, trained[0], pool_size=POOL + 1)


def test_missing_teacher_is_a_one_line_error(tmp_path) -> None:
    _register_commands()
    missing = tmp_path / "nowhere"
    args = ["train", "decoder", "--teacher", str(missing), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"--teacher {missing}: no such file or folder" in result.output


def test_folder_without_checkpoint_is_a_one_line_error(tmp_path) -> None:
    _register_commands()
    args = ["train", "decoder", "--teacher", str(tmp_path), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "neither a diffusers folder" in result.output


def test_with_decoder_swaps_the_vae_and_its_config(trained, teacher_dir) -> None:
    teacher, vae = load_checkpoint(teacher_dir), load_vae(trained[0] / "decoder")
    model = with_decoder(teacher, vae)
    assert model.vae is vae and model.config.vae == TINY_VAE.pruned()
    assert model.unet is teacher.unet and model.config.unet == teacher.config.unet


def test_with_decoder_refuses_another_scaling_factor(teacher_dir) -> None:
    from dataclasses import replace

    other = AutoencoderKL(replace(TINY_VAE.pruned(), scaling_factor=0.25))
    with pytest.raises(ConfigError, match="scaling_factor"):
        with_decoder(load_checkpoint(teacher_dir), other)
