"""`sfmobile distill` and `sfmobile train decoder` on real data (stages/distill.py, decoder.py,
real_data.py): a tiny random diffusers SD folder (epsilon-prediction, as SD-1.5) as teacher, the
tiny image-caption folder of tiny_data.py as --data, square crops or aspect-ratio buckets.

References: diffusers' UNet and noise schedule for the epsilon -> v conversion inside the
distillation target (a hand computation of the teacher's guided DDIM steps in epsilon space),
sampling.sample_latents for the decoder's pool, an uninterrupted run for a resumed one, the loss
before training for the loss after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from compvis_files import compvis_state
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from reference_pipelines import save_reference_pipeline
from safetensors.torch import save_file
from stage_checks import assert_loss_falls
from tiny_data import CAPTIONS, write_photos
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import InputError
from sfmobile.models.random_init import random_model
from sfmobile.train.data.batches import StreamOptions
from sfmobile.train.data.images import Buckets
from sfmobile.train.data.latent_cache import CacheConfig, write_latent_cache
from sfmobile.train.data.source import DataSpec, open_image_captions
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.engine.train_state import METRICS_FILE, STATE_FILE, MetricsLog
from sfmobile.train.sampling import encode_captions, sample_latents
from sfmobile.train.stages.decoder import DECODER_FOLDER, DecoderStage
from sfmobile.train.stages.distill import STUDENT_FOLDER, DistillConfig, DistillStage
from sfmobile.train.stages.latent_pool import pool_seeds
from sfmobile.train.stages.real_data import RealData
from sfmobile.weights import load_model
from sfmobile.weights.safe_io import read_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32  # images; the teacher's VAE downsamples 4x: 8x8 latents
BUCKETS = Buckets.parse("32x32,48x24,24x48")
SHAPES = [(64, 32), (32, 64), (40, 48), (64, 32), (48, 48), (32, 64)]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A seeded tiny SD-1.x diffusers folder, epsilon-prediction, leading spacing (SD-1.5's
    scheduler), whose VAE (8 norm groups) still has whole groups at half the channels."""
    folder = tmp_path_factory.mktemp("teacher")
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
        norm_num_groups=8,
    )
    save_reference_pipeline(folder, unet, vae, "epsilon")
    return folder / "model"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return write_photos(tmp_path_factory.mktemp("photos"), SHAPES)


def real_data(photos, buckets=None) -> RealData:
    return RealData(DataSpec(str(photos)), image_size=SIZE, buckets=buckets)


def distill_stage(teacher_dir, photos, buckets=None, **options) -> DistillStage:
    config = DistillConfig(2, 4, **{"cfg_aware_prob": 1.0, **options})
    return DistillStage(load_model(teacher_dir), config, seed=0, data=real_data(photos, buckets))


def test_epsilon_teacher_targets_are_converted_to_v_as_a_hand_computation(teacher_dir, photos):
    """The stage's x_target (teacher's guided steps with its eps output converted to v, DDIM
    algebra in v on the student's one scheduler) equals the same steps done by hand in epsilon
    space with diffusers' UNet and alphas_cumprod; and the converted v is alpha eps - sigma x0."""
    stage = distill_stage(teacher_dir, photos)
    assert stage.scheduler.config.prediction_type == "v_prediction"
    pipe = StableDiffusionPipeline.from_pretrained(teacher_dir).to(torch.float32)
    assert pipe.scheduler.config.prediction_type == "epsilon"
    generator = torch.Generator().manual_seed(1)
    z_t = torch.randn((2, 4, 8, 8), generator=generator)
    chains = stage.chains  # [2 student steps, k + 1 = 3]: t = 999 -> 749 -> 499, 499 -> 249 -> -1
    assert chains.tolist() == [[999, 749, 499], [499, 249, -1]]
    with torch.no_grad():
        cond = encode_captions(stage.teacher.text_encoder, stage.tokenizer, CAPTIONS[:2])
        uncond = encode_captions(stage.teacher.text_encoder, stage.tokenizer, [""]).expand(
            2, -1, -1
        )
        w = torch.tensor([3.0, 7.5])
        z_target = stage._teacher_steps(z_t, chains, cond, uncond, w, True)
        x_target = stage._one_step_x0(z_t, z_target, chains[:, 0], chains[:, -1])

    alpha_bar = pipe.scheduler.alphas_cumprod.double()
    final = alpha_bar[0]  # set_alpha_to_one False (SD-1.5's): the step past t = 0 lands on a_0

    def a(t: int) -> torch.Tensor:
        return alpha_bar[t] if t >= 0 else final

    for row in range(2):
        z = z_t[row : row + 1].double()
        for t, t_prev in zip(chains[row, :-1].tolist(), chains[row, 1:].tolist(), strict=True):
            with torch.no_grad():
                both = pipe.unet(
                    torch.cat([z, z]).float(), t, torch.cat([uncond[:1], cond[row : row + 1]])
                ).sample.double()
            eps = both[0:1] + w[row].item() * (both[1:2] - both[0:1])
            x0 = (z - (1 - a(t)).sqrt() * eps) / a(t).sqrt()
            v = a(t).sqrt() * eps - (1 - a(t)).sqrt() * x0
            got_v = stage.teacher_v(z.float(), eps.float(), torch.tensor([t]))
            torch.testing.assert_close(got_v.double(), v, atol=1e-4, rtol=1e-4)
            z = a(t_prev).sqrt() * x0 + (1 - a(t_prev)).sqrt() * eps
        t, t_next = chains[row, 0].item(), chains[row, -1].item()
        ratio = ((1 - a(t_next)) / (1 - a(t))).sqrt()
        expected = (z - ratio * z_t[row : row + 1].double()) / (
            a(t_next).sqrt() - ratio * a(t).sqrt()
        )
        torch.testing.assert_close(x_target[row : row + 1].double(), expected, atol=1e-3, rtol=1e-4)


def test_distillation_from_an_epsilon_teacher_lowers_the_loss_on_a_fixed_batch(teacher_dir, photos):
    stage = distill_stage(teacher_dir, photos, caption_dropout=0.0)
    batch = next(stage.batches(0, 4, 0, 1))
    assert batch["image"].shape == (4, 3, SIZE, SIZE)
    assert_loss_falls(stage, batch, stage.student.parameters(), lr=1e-3, steps=15, seed=5)


def test_distill_and_decoder_on_cached_latents_give_the_loss_of_the_images(
    teacher_dir, photos, tmp_path
):
    teacher = load_model(teacher_dir)
    reader = open_image_captions(DataSpec(str(photos)), SIZE)
    write_latent_cache(teacher, reader, tmp_path / "cache", CacheConfig(batch_size=4))
    cached = RealData(cache=tmp_path / "cache", image_size=SIZE)
    config = DistillConfig(2, 4, cfg_aware_prob=1.0)
    pairs = [
        (distill_stage(teacher_dir, photos), DistillStage(teacher, config, data=cached)),
        (
            decoder_stage(teacher_dir, photos, tmp_path / "a"),
            DecoderStage(teacher, tmp_path / "b", pool_size=4, heldout=2, data=cached),
        ),
    ]
    for from_images, from_cache in pairs:
        losses = []
        for stage in (from_images, from_cache):
            batch = next(stage.batches(2, 2, 0, 1))
            assert batch["caption"] == CAPTIONS[2:4]
            with torch.no_grad():
                loss, _ = stage.loss(stage.trainable(), batch, 0, torch.Generator().manual_seed(7))
            losses.append(loss.item())
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def decoder_stage(teacher_dir, photos, out, buckets=None) -> DecoderStage:
    data = real_data(photos, buckets)
    return DecoderStage(load_model(teacher_dir), out, pool_size=4, heldout=2, data=data)


def test_decoder_pool_and_heldout_prompts_are_the_datas_captions(teacher_dir, photos, tmp_path):
    stage = decoder_stage(teacher_dir, photos, tmp_path)
    assert stage.pool_captions == CAPTIONS[:4] and stage.heldout_captions == CAPTIONS[4:6]
    teacher = load_model(teacher_dir)
    steps, guidance = teacher.scheduler.default_steps, teacher.scheduler.default_guidance
    expected = sample_latents(teacher, CAPTIONS[:4], pool_seeds(0, 4), steps, guidance, SIZE // 4)
    torch.testing.assert_close(stage.pool, expected)


def test_decoder_on_data_lowers_the_loss_on_a_fixed_batch(teacher_dir, photos, tmp_path):
    stage = decoder_stage(teacher_dir, photos, tmp_path)
    batch = next(stage.batches(0, 4, 0, 1))
    assert_loss_falls(stage, batch, stage.decoder.parameters(), lr=3e-3, steps=10, seed=2)


def run_config(out, **overrides) -> TrainConfig:
    base = {"steps": 3, "batch_size": 2, "log_every": 1, "lr": 1e-3, "ema_decay": 0.9}
    return TrainConfig(out=out, **{**base, **overrides})


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-workers"])
@pytest.mark.parametrize("buckets", [None, BUCKETS], ids=["square", "buckets"])
@pytest.mark.parametrize("stage_name", ["distill", "decoder"])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    stage_name, buckets, workers, teacher_dir, photos, tmp_path
):
    """3 steps at once against 2 steps, stop, resume for the last one: same weights, same
    logged losses (all finite). With buckets the batches differ in shape from step to step;
    with 2 DataLoader workers the resume starts each worker from its saved stream state."""

    def stage(out):
        if stage_name == "distill":
            return distill_stage(teacher_dir, photos, buckets)
        return decoder_stage(teacher_dir, photos, out, buckets)

    folder = STUDENT_FOLDER if stage_name == "distill" else DECODER_FOLDER
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert Trainer(stage(whole), run_config(whole, data_workers=workers)).run().finished
    first = Trainer(stage(split), run_config(split, stop_after=2, data_workers=workers)).run()
    assert first.step == 2 and (split / STATE_FILE).is_file() and not (split / folder).exists()
    assert Trainer(stage(split), run_config(split, data_workers=workers)).run().finished
    files = sorted(p.name for p in (whole / folder).glob("*.safetensors"))
    assert files, f"no weights in {whole / folder}"
    for name in files:
        expected, actual = read_tensors(whole / folder / name), read_tensors(split / folder / name)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), (name, key)
    losses = [r["loss"] for r in MetricsLog(whole / METRICS_FILE).records()]
    assert [r["loss"] for r in MetricsLog(split / METRICS_FILE).records()] == losses
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_distill_cli_takes_a_compvis_teacher_and_data(photos, tmp_path):
    """An epsilon CompVis single file (tiny preset) as --teacher: the student is v-prediction
    with trailing spacing and --steps default steps."""
    teacher = random_model("tiny", seed=1)
    save_file(compvis_state(teacher), str(tmp_path / "teacher.safetensors"))
    _register_commands()
    args = ["distill", "--teacher", str(tmp_path / "teacher.safetensors"), "--teacher-preset",
            "tiny", "--data", str(photos), "--image-size", str(SIZE), "--steps", "2",
            "--teacher-steps", "4", "--train-steps", "2", "--batch-size", "2", "--out",
            str(tmp_path / "run"), "--threads", "1", "--buckets", BUCKETS.text(), "--log-every",
            "1", "--data-workers", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    student = load_model(tmp_path / "run" / STUDENT_FOLDER)
    assert student.scheduler.prediction_type == "v_prediction"
    assert student.scheduler.timestep_spacing == "trailing"
    assert student.scheduler.default_steps == 2
    records = MetricsLog(tmp_path / "run" / METRICS_FILE).records()
    assert len(records) == 2 and all(np.isfinite(r["loss"]) for r in records)
    # --data-workers 2: a step's batch from each worker in turn, each worker bucketing its
    # share; worker 0 (img0 tall, img2 and img4 square) and worker 1 (img1 wide, img3 tall,
    # img5 wide) each read 3 images for their first batch
    assert records[-1]["data_samples_read"] == 6


def test_decoder_cli_takes_a_diffusers_teacher_and_data(teacher_dir, photos, tmp_path):
    _register_commands()
    out = tmp_path / "run"
    args = ["train", "decoder", "--teacher", str(teacher_dir), "--data", str(photos),
            "--image-size", str(SIZE), "--steps", "2", "--batch-size", "2", "--pool-size", "2",
            "--out", str(out), "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / DECODER_FOLDER / "report.json").is_file()
    missing = CliRunner().invoke(app, [*args[:3], str(tmp_path / "nowhere"), *args[4:]])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output


def test_data_and_cache_together_are_refused(teacher_dir, photos, tmp_path):
    _register_commands()
    args = ["distill", "--from", str(teacher_dir), "--steps", "2", "--out", str(tmp_path),
            "--data", str(photos), "--cache", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "exactly one of --data and --cache" in result.output


@pytest.mark.parametrize(
    "command",
    [["distill", "--steps", "2", "--from"], ["train", "unet", "--teacher"],
     ["train", "decoder", "--teacher"]],
    ids=["distill", "unet", "decoder"],
)  # fmt: skip
def test_data_workers_with_a_cache_are_refused_before_the_teacher_loads(command, tmp_path):
    """A cache holds latents encoded already: nothing for --data-workers to decode. The refusal
    comes first (the teacher named here does not even exist) and writes nothing."""
    _register_commands()
    out = tmp_path / "run"
    args = [*command, str(tmp_path / "no-teacher"), "--out", str(out), "--cache",
            str(tmp_path / "cache"), "--data-workers", "2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"--data-workers 2 with --cache {tmp_path / 'cache'}:" in result.output
    assert "no-teacher" not in result.output and not out.exists()


@pytest.mark.parametrize(
    "command",
    [["distill", "--steps", "2", "--from"], ["train", "decoder", "--teacher"]],
    ids=["distill", "decoder"],
)
def test_data_workers_on_the_scenes_are_refused(command, tmp_path):
    _register_commands()
    args = [*command, str(tmp_path / "no-teacher"), "--out", str(tmp_path / "run"),
            "--data-workers", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "--data-workers 3 without --data" in result.output


def test_a_cache_refuses_stream_workers_given_to_its_batches(tmp_path):
    """What the Trainer hands a stage's batches (data/batches.StreamOptions): a cache read in
    the training process has no workers to start."""
    cached = RealData(cache=tmp_path / "cache")
    with pytest.raises(InputError, match="--data-workers 2 with --cache"):
        cached.batches(0, 2, 0, 1, StreamOptions(workers=2))


def test_bucketed_decoder_under_torchrun_keeps_ranks_in_step(teacher_dir, photos, tmp_path):
    """2 gloo processes whose batches have different bucket shapes in the same step (rank 0
    square, rank 1 wide): the pool and encoded parts go through one DDP forward, and both ranks
    end every logged step with the same weights."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, str(teacher_dir), str(photos),
               str(tmp_path / "run")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = MetricsLog(tmp_path / "run" / METRICS_FILE).records()
    assert len(records) == 2 and all(np.isfinite(r["loss"]) for r in records)
    assert all(r["params_sha256_by_rank"][0] == r["params_sha256_by_rank"][1] for r in records)
    assert (tmp_path / "run" / DECODER_FOLDER / "report.json").is_file()


if __name__ == "__main__":  # what each torchrun process of the test above runs
    teacher_path, photos_path, out_path = (Path(a) for a in sys.argv[1:4])
    torch.set_num_threads(1)
    bucketed = decoder_stage(teacher_path, photos_path, out_path, BUCKETS)
    Trainer(bucketed, run_config(out_path, steps=2)).run()
