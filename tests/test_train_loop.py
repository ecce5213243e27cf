"""The shared training loop and the VAE and teacher stages, on tiny models for a few steps.

References: diffusers' DDPMScheduler (v-prediction target), our own checkpoint readers for the
outputs, and an uninterrupted run for resumption (bit-identical final weights).
"""

import json
import signal

import numpy as np
import pytest
import tiny_models
import torch
from diffusers import DDPMScheduler
from PIL import Image
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.config import StageConfig, UNetConfig
from sfmobile.errors import InputError
from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.engine.loop import TrainConfig, Trainer, continuation_seed
from sfmobile.train.engine.train_state import METRICS_FILE, STATE_FILE, MetricsLog, load_state
from sfmobile.train.scenes.generator import SceneGenerator
from sfmobile.train.stages.teacher import TeacherStage
from sfmobile.train.stages.vae import SCALE_IMAGES, VaeStage, load_vae, save_vae
from sfmobile.weights.fingerprint import weights_fingerprint
from sfmobile.weights.safe_io import read_tensors
from sfmobile.weights.sfmobile_checkpoint import load_checkpoint

TINY_VAE = tiny_models.vae()
TINY_TEXT = tiny_models.TEXT
# The demo preset's layout at tiny width: four stages, 8x8 scene latents down to 1x1.
TINY_UNET = UNetConfig(
    down=(
        StageConfig(16, (0, 0), heads=2, resample=True),
        StageConfig(16, (1, 1), heads=2, resample=True),
        StageConfig(32, (1,), heads=2, resample=True),
        StageConfig(32, (0,), heads=2),
    ),
    mid=StageConfig(32, (1,), heads=2),
    up=(
        StageConfig(32, (0, 0), heads=2, resample=True),
        StageConfig(32, (2, 2), heads=2, resample=True),
        StageConfig(16, (1, 1, 1), heads=2, resample=True),
        StageConfig(16, (0, 0, 0), heads=2),
    ),
    cross_attention_dim=32,
    time_embed_dim=32,
    time_proj_dim=16,
    norm_groups=8,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory):
    """A random tiny VAE in the folder format the VAE stage writes."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vae") / "vae"
    save_vae(AutoencoderKL(TINY_VAE), folder)
    return folder


def run_config(out, **overrides) -> TrainConfig:
    settings = {"steps": 4, "batch_size": 2, "log_every": 1, "checkpoint_every": 100}
    return TrainConfig(out=out, **{**settings, **overrides})


def teacher(vae_dir, **kwargs) -> TeacherStage:
    return TeacherStage(load_vae(vae_dir), TINY_UNET, TINY_TEXT, **kwargs)


def test_vae_stage_writes_vae_with_scaling_factor_one_over_latent_std(tmp_path):
    stage = VaeStage(TINY_VAE)
    result = Trainer(stage, run_config(tmp_path, steps=2)).run()
    assert result.finished and result.step == 2
    vae = load_vae(tmp_path)  # the run folder; load_vae finds vae/ inside it
    for key, tensor in stage.vae.state_dict().items():
        assert torch.equal(vae.state_dict()[key], tensor), key
    scenes = SceneGenerator("train", seed=0, size=64)
    images = torch.from_numpy(np.stack([scenes[i].model_input() for i in range(SCALE_IMAGES)]))
    with torch.no_grad():
        latents = vae.encode(images).numpy()
    assert vae.config.scaling_factor == pytest.approx(1.0 / latents.std(), rel=1e-4)


def test_teacher_checkpoint_is_v_prediction_and_generate_draws_from_it(tiny_vae_dir, tmp_path):
    result = Trainer(teacher(tiny_vae_dir), run_config(tmp_path, steps=2)).run()
    assert result.finished
    model = load_checkpoint(tmp_path / "teacher")
    assert model.scheduler.prediction_type == "v_prediction"
    assert model.scheduler.default_steps == 32
    assert model.config.vae == load_vae(tiny_vae_dir).config
    _register_commands()
    png = tmp_path / "a.png"
    outcome = CliRunner().invoke(
        app,
        ["generate", "--model", str(tmp_path / "teacher"), "--prompt", "a red circle",
         "--height", "64", "--width", "64", "--steps", "2", "--out", str(png)],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert Image.open(png).size == (64, 64)


def test_teacher_init_continues_from_the_checkpoint_weights(tiny_vae_dir, tmp_path):
    Trainer(teacher(tiny_vae_dir), run_config(tmp_path / "first", steps=2)).run()
    trained = load_checkpoint(tmp_path / "first" / "teacher")
    other_arch = tiny_models.unet()  # ignored: init's own architecture wins
    stage = TeacherStage(load_vae(tiny_vae_dir), other_arch, TINY_TEXT, seed=5, init=trained)
    for name in ("unet", "text_encoder"):
        ours, theirs = getattr(stage, name).state_dict(), getattr(trained, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name


def test_continuation_seed_is_reproducible_and_new_for_other_weights_or_seeds():
    first, other = "ab" * 32, "cd" * 32
    assert continuation_seed(0, first) == continuation_seed(0, first)
    assert len({0, continuation_seed(0, first), continuation_seed(0, other),
                continuation_seed(1, first)}) == 4  # fmt: skip


def test_trainer_gives_a_continuing_stage_a_seed_of_its_own(tiny_vae_dir, tmp_path):
    """The Python API gets what `--init` gets: the Trainer mixes the stage's `continues`."""
    Trainer(teacher(tiny_vae_dir), run_config(tmp_path / "first", steps=2)).run()
    trained = load_checkpoint(tmp_path / "first" / "teacher")
    fresh = Trainer(teacher(tiny_vae_dir), run_config(tmp_path / "fresh", steps=1))
    assert (fresh.config.seed, fresh.config.data_seed) == (0, 0)  # fresh runs unchanged
    stage = teacher(tiny_vae_dir, init=trained)
    Trainer(stage, run_config(tmp_path / "next", steps=2, stop_after=1)).run()
    expected = continuation_seed(
        0, weights_fingerprint({"unet": trained.unet, "text_encoder": trained.text_encoder})
    )
    run = load_state(tmp_path / "next" / STATE_FILE).run
    assert run["seed"] == run["data_seed"] == expected


def test_teacher_init_run_draws_batches_with_a_seed_of_its_own(tiny_vae_dir, tmp_path):
    """A continuation must not replay the batches (scenes, noise, timesteps) of seed 0."""
    Trainer(teacher(tiny_vae_dir), run_config(tmp_path / "first", steps=2)).run()
    trained = load_checkpoint(tmp_path / "first" / "teacher")
    _register_commands()
    outcome = CliRunner().invoke(
        app,
        ["train", "teacher", "--vae", str(tiny_vae_dir), "--out", str(tmp_path / "next"),
         "--init", str(tmp_path / "first" / "teacher"), "--steps", "2", "--stop-after", "1",
         "--batch-size", "2", "--threads", "1"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    expected = continuation_seed(
        0, weights_fingerprint({"unet": trained.unet, "text_encoder": trained.text_encoder})
    )
    run = load_state(tmp_path / "next" / STATE_FILE).run
    assert run["seed"] == run["data_seed"] == expected != 0
    assert f"seed {expected}" in outcome.output


def test_teacher_init_that_is_not_a_checkpoint_is_refused(tiny_vae_dir, tmp_path):
    _register_commands()
    outcome = CliRunner().invoke(
        app,
        ["train", "teacher", "--vae", str(tiny_vae_dir), "--out", str(tmp_path / "run"),
         "--init", str(tmp_path)],
    )  # fmt: skip
    assert outcome.exit_code == 2
    assert "--init" in outcome.output and "not an sfmobile checkpoint" in outcome.output


def test_teacher_loss_is_mse_to_diffusers_velocity(tiny_vae_dir):
    """A stand-in UNet that predicts 0 makes the loss mean(v^2); v from diffusers' scheduler."""
    stage = teacher(tiny_vae_dir, caption_dropout=0.0)
    seen = {}

    def zero_unet(noisy, timesteps, text):
        seen.update(noisy=noisy, timesteps=timesteps)
        return torch.zeros_like(noisy)

    scenes = SceneGenerator("train", seed=0, size=64)
    batch = {"image": torch.from_numpy(np.stack([scenes[i].model_input() for i in range(4)]))}
    batch["caption"] = [scenes[i].caption for i in range(4)]
    models = {"unet": zero_unet, "text_encoder": stage.text_encoder}
    loss, _ = stage.loss(models, batch, 0, torch.Generator().manual_seed(1))

    reference = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="v_prediction",
    )  # fmt: skip
    t = seen["timesteps"].long()
    assert torch.equal(seen["timesteps"], t.float()) and t.min() >= 0 and t.max() < 1000
    with torch.no_grad():
        z0 = stage.vae.encode(batch["image"]) * stage.vae.config.scaling_factor
    alpha_bar = reference.alphas_cumprod[t][:, None, None, None]
    noise = (seen["noisy"] - alpha_bar.sqrt() * z0) / (1 - alpha_bar).sqrt()
    velocity = reference.get_velocity(z0, noise, t)
    assert loss.item() == pytest.approx(velocity.square().mean().item(), rel=1e-4)


def test_teacher_empties_about_one_caption_in_ten(tiny_vae_dir, monkeypatch):
    stage = teacher(tiny_vae_dir)
    encoded = []
    encode_batch = stage.tokenizer.encode_batch  # the shared tokenizer: patch it reversibly
    monkeypatch.setattr(
        stage.tokenizer, "encode_batch", lambda texts: encoded.extend(texts) or encode_batch(texts)
    )
    batch = {"image": torch.zeros(8, 3, 64, 64), "caption": ["a red circle"] * 8}
    models = stage.trainable()
    for step in range(100):
        with torch.no_grad():
            stage.loss(models, batch, step, torch.Generator().manual_seed(step))
    share = sum(text == "" for text in encoded) / len(encoded)
    assert 0.06 < share < 0.14


def final_weights(stage_name, out):
    path = out / "vae" / "vae.safetensors" if stage_name == "vae" else out / "teacher"
    return read_tensors(path if stage_name == "vae" else path / "model.safetensors")


def make_stage(stage_name, vae_dir):
    return VaeStage(TINY_VAE) if stage_name == "vae" else teacher(vae_dir)


@pytest.mark.parametrize("stage_name", ["vae", "teacher"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(
    stage_name, tiny_vae_dir, tmp_path
):
    whole, split = tmp_path / "whole", tmp_path / "split"
    options = {"ema_decay": 0.9, "lr_schedule": "cosine", "warmup_steps": 2}
    Trainer(make_stage(stage_name, tiny_vae_dir), run_config(whole, **options)).run()
    first = Trainer(
        make_stage(stage_name, tiny_vae_dir), run_config(split, stop_after=2, **options)
    )
    assert first.run().step == 2 and not (split / stage_name).exists()
    result = Trainer(make_stage(stage_name, tiny_vae_dir), run_config(split, **options)).run()
    assert result.finished and result.step == 4
    expected, actual = final_weights(stage_name, whole), final_weights(stage_name, split)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    losses = [r["loss"] for r in MetricsLog(whole / METRICS_FILE).records()]
    assert [r["loss"] for r in MetricsLog(split / METRICS_FILE).records()] == losses


def test_resume_forgets_metrics_logged_after_the_last_checkpoint(tiny_vae_dir, tmp_path):
    Trainer(teacher(tiny_vae_dir), run_config(tmp_path, stop_after=2)).run()
    with (tmp_path / METRICS_FILE).open("a") as file:  # as if killed after logging step 3
        file.write(json.dumps({"step": 3, "loss": 123.0}) + "\n")
    Trainer(teacher(tiny_vae_dir), run_config(tmp_path)).run()
    records = MetricsLog(tmp_path / METRICS_FILE).records()
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert 123.0 not in [r["loss"] for r in records]


def test_resume_with_another_batch_size_is_refused(tiny_vae_dir, tmp_path):
    Trainer(teacher(tiny_vae_dir), run_config(tmp_path, stop_after=1)).run()
    with pytest.raises(InputError, match="batch_size was 2, now 3"):
        Trainer(teacher(tiny_vae_dir), run_config(tmp_path, batch_size=3)).run()


def test_ctrl_c_finishes_the_step_saves_and_the_rerun_resumes(tiny_vae_dir, tmp_path):
    stage = teacher(tiny_vae_dir)
    loss = stage.loss

    def interrupted_loss(models, batch, step, generator):
        if step == 1:
            signal.raise_signal(signal.SIGINT)
        return loss(models, batch, step, generator)

    stage.loss = interrupted_loss
    result = Trainer(stage, run_config(tmp_path)).run()
    assert (result.step, result.finished, result.interrupted) == (2, False, True)
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["step"] == 2
    assert Trainer(teacher(tiny_vae_dir), run_config(tmp_path)).run().finished


def test_cli_trains_vae_then_teacher_and_resumes_after_stop(tmp_path):
    _register_commands()
    runner = CliRunner()
    common = ["--batch-size", "2", "--steps", "2", "--log-every", "1", "--threads", "1"]
    vae = runner.invoke(app, ["train", "vae", "--out", str(tmp_path / "v"), *common])
    assert vae.exit_code == 0, vae.output
    teacher_args = ["train", "teacher", "--vae", str(tmp_path / "v"), "--out", str(tmp_path / "t")]
    stopped = runner.invoke(app, [*teacher_args, *common, "--stop-after", "1"])
    assert stopped.exit_code == 0 and "stopped at step 1" in stopped.output
    resumed = runner.invoke(app, [*teacher_args, *common])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming teacher from step 1" in resumed.output
    assert load_checkpoint(tmp_path / "t" / "teacher").config.vae.scaling_factor != 0.18215


def test_cli_teacher_without_trained_vae_is_a_one_line_error(tmp_path):
    _register_commands()
    outcome = CliRunner().invoke(
        app, ["train", "teacher", "--vae", str(tmp_path), "--out", str(tmp_path / "t")]
    )
    assert outcome.exit_code == 2
    assert "no trained VAE here" in outcome.output
