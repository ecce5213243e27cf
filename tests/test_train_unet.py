"""`sfmobile train unet` (stages/unet.py): a student UNet initialised from a tiny random diffusers
SD folder (the teacher) and trained on a tiny image-caption folder written here.

References: diffusers itself for the hand computation of the loss (its VAE's latent mean, CLIP
text embeddings, DDPM noise schedule and UNet2DConditionModel output on the noisy latents the
stage used); an uninterrupted run for the resumed one; the loss before training for the loss
after it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from reference_pipelines import build_tiny_reference
from stage_checks import assert_loss_falls
from tiny_data import CAPTIONS, write_photos
from typer.testing import CliRunner

from sfmobile.cli import app
from sfmobile.cli.app import _register_commands
from sfmobile.errors import ConfigError, InputError
from sfmobile.train.data.batches import image_batches, stream_report
from sfmobile.train.data.latent_cache import CacheConfig, write_latent_cache
from sfmobile.train.data.source import DataSpec, open_image_captions
from sfmobile.train.engine.loop import TrainConfig, Trainer
from sfmobile.train.engine.train_state import METRICS_FILE, STATE_FILE, MetricsLog, load_state
from sfmobile.train.stages.unet import UNET_FOLDER, UnetStage, UnetTrainConfig
from sfmobile.weights import load_model
from sfmobile.weights.safe_io import read_tensors
from sfmobile.weights.sfmobile_checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 32


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher")
    build_tiny_reference(folder)
    return folder / "model"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Six PNG/JPEG images with a .txt caption beside each."""
    return write_photos(tmp_path_factory.mktemp("photos"))


def student_config(teacher):
    """The teacher's UNet without the inner down stage's attention: a smaller student that
    init_from_sd15 fills from the teacher but for what it lacks."""
    unet = teacher.config.unet
    inner = replace(unet.down[1], units=tuple(0 for _ in unet.down[1].units))
    return replace(unet, down=(unet.down[0], inner))


def make_stage(teacher_dir, photos, **options) -> UnetStage:
    teacher = load_model(teacher_dir)
    config = UnetTrainConfig(data=DataSpec(str(photos)), image_size=SIZE, **options)
    return UnetStage(teacher, student_config(teacher), config, seed=0)


def fixed_batch(photos, count=4) -> dict:
    examples = list(open_image_captions(DataSpec(str(photos)), SIZE))[:count]
    return {
        "image": torch.stack([e.image for e in examples]),
        "caption": [e.caption for e in examples],
        "index": torch.arange(count),
    }


class Recorder(torch.nn.Module):
    """Calls the student and keeps its inputs and output."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.calls = unet, []

    def forward(self, noisy, timesteps, text):
        out = self.unet(noisy, timesteps, text)
        self.calls.append((noisy, timesteps, text, out))
        return out


def test_loss_is_the_weighted_noise_and_teacher_losses_computed_with_diffusers(teacher_dir, photos):
    stage = make_stage(teacher_dir, photos, noise_weight=0.7, distill_weight=0.3, caption_dropout=0)
    batch = fixed_batch(photos)
    recorder = Recorder(stage.unet)
    with torch.no_grad():
        loss, metrics = stage.loss({"unet": recorder}, batch, 0, torch.Generator().manual_seed(3))
    ((noisy, timesteps, text, student),) = recorder.calls

    pipe = StableDiffusionPipeline.from_pretrained(teacher_dir).to(torch.float32)
    with torch.no_grad():
        z0 = pipe.vae.encode(batch["image"]).latent_dist.mean * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(
            batch["caption"], padding="max_length", max_length=77, return_tensors="pt"
        ).input_ids
        expected_text = pipe.text_encoder(ids)[0]
        teacher_out = pipe.unet(noisy, timesteps, encoder_hidden_states=text).sample
    torch.testing.assert_close(text, expected_text, atol=1e-5, rtol=1e-5)
    alpha_bar = pipe.scheduler.alphas_cumprod[timesteps.long()].reshape(-1, 1, 1, 1)
    eps = (noisy - alpha_bar.sqrt() * z0) / (1 - alpha_bar).sqrt()  # the noise that was added
    task = ((student - eps) ** 2).mean()
    distill = ((student - teacher_out) ** 2).mean()
    assert metrics["task_mse"] == pytest.approx(task.item(), rel=1e-4)
    assert metrics["distill_mse"] == pytest.approx(distill.item(), rel=1e-4)
    assert loss.item() == pytest.approx(0.7 * task.item() + 0.3 * distill.item(), rel=1e-4)
    assert distill.item() > 1e-4  # the student differs from the teacher (attention dropped)


def test_student_is_initialised_from_the_teacher_but_for_the_blocks_it_changes(teacher_dir, photos):
    stage = make_stage(teacher_dir, photos)
    teacher = stage.teacher.unet.state_dict()
    for name, tensor in stage.unet.state_dict().items():
        if name in stage.init_report.copied:
            assert torch.equal(tensor, teacher[name]), name
    assert stage.init_report.fresh  # the inner stage's ResNet lost its transformer's input
    assert stage.trainable().keys() == {"unet"}
    assert {"text_encoder", "vae", "teacher_unet"} <= stage.frozen().keys()


def test_loss_falls_on_a_fixed_batch(teacher_dir, photos):
    stage = make_stage(teacher_dir, photos, caption_dropout=0.0)
    batch = fixed_batch(photos)
    assert_loss_falls(stage, batch, stage.unet.parameters(), lr=1e-3, steps=15, seed=5)


def test_cached_latents_give_the_loss_of_the_images(teacher_dir, photos, tmp_path):
    teacher = load_model(teacher_dir)
    reader = open_image_captions(DataSpec(str(photos)), SIZE)
    write_latent_cache(teacher, reader, tmp_path / "cache", CacheConfig(batch_size=4))
    from_images = make_stage(teacher_dir, photos)
    config = UnetTrainConfig(cache=tmp_path / "cache", image_size=SIZE)
    from_cache = UnetStage(teacher, student_config(teacher), config, seed=0)
    image_batch = next(from_images.batches(2, 3, 0, 1))
    cache_batch = next(from_cache.batches(2, 3, 0, 1))
    assert image_batch["caption"] == cache_batch["caption"] == CAPTIONS[2:5]
    losses = []
    for stage, batch in ((from_images, image_batch), (from_cache, cache_batch)):
        with torch.no_grad():
            loss, _ = stage.loss(stage.trainable(), batch, 0, torch.Generator().manual_seed(7))
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)


def test_batches_cycle_over_epochs_and_ranks_read_disjoint_samples(teacher_dir, photos):
    stage = make_stage(teacher_dir, photos)
    rank0 = stage.batches(0, 4, 0, 2)
    first, second = next(rank0), next(rank0)
    assert first["caption"] == [CAPTIONS[0], CAPTIONS[2], CAPTIONS[4], CAPTIONS[0]]
    assert second["caption"][:2] == [CAPTIONS[2], CAPTIONS[4]]
    assert next(stage.batches(0, 3, 1, 2))["caption"] == CAPTIONS[1::2]
    assert torch.equal(next(stage.batches(4, 4, 0, 2))["image"], second["image"])


def test_unreadable_images_and_empty_captions_are_skipped_and_counted_in_each_pass(
    photos, tmp_path
):
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    (folder / "img0.jpg").write_bytes(b"not a jpeg at all")
    (folder / "img1.txt").write_text("   ")
    stream = image_batches(DataSpec(str(folder)), SIZE, 4, 0, 1, 0)
    first, second = next(stream), next(stream)
    assert first["caption"] + second["caption"][:1] == CAPTIONS[2:] + CAPTIONS[2:3]
    counts = []
    for batch in (first, second):  # the second batch starts the second pass: counted again
        report = stream_report(batch["data_state"])
        counts.append((report.unreadable_images, report.missing_captions, report.yielded))
    assert counts == [(1, 1, 4), (2, 2, 8)]


def run_config(out, **overrides) -> TrainConfig:
    base = {"steps": 4, "batch_size": 2, "log_every": 1, "lr": 1e-3, "ema_decay": 0.9}
    return TrainConfig(out=out, **{**base, **overrides})


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(teacher_dir, photos, tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    Trainer(make_stage(teacher_dir, photos), run_config(whole)).run()
    first = Trainer(make_stage(teacher_dir, photos), run_config(split, stop_after=2))
    assert first.run().step == 2 and not (split / UNET_FOLDER).exists()
    assert Trainer(make_stage(teacher_dir, photos), run_config(split)).run().finished
    expected = read_tensors(whole / UNET_FOLDER / "model.safetensors")
    actual = read_tensors(split / UNET_FOLDER / "model.safetensors")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    losses = [r["loss"] for r in MetricsLog(whole / METRICS_FILE).records()]
    assert [r["loss"] for r in MetricsLog(split / METRICS_FILE).records()] == losses
    assert all(np.isfinite(losses))


def test_workers_resume_at_their_stream_positions_and_skips_reach_the_metrics(
    teacher_dir, photos, tmp_path
):
    """Two DataLoader workers per process: the resumed run seeks each worker's reader to the
    saved position and still ends with the uninterrupted run's weights; what the workers
    skipped (one corrupt image, one empty caption per pass) is in metrics.jsonl."""
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    (folder / "img0.jpg").write_bytes(b"not a jpeg at all")
    (folder / "img3.txt").write_text("")
    whole, split = tmp_path / "whole", tmp_path / "split"
    stage = lambda: make_stage(teacher_dir, folder)  # noqa: E731
    Trainer(stage(), run_config(whole, data_workers=2)).run()
    Trainer(stage(), run_config(split, data_workers=2, stop_after=2)).run()
    saved = load_state(split / STATE_FILE).data
    assert len(saved) == 1 and len(saved[0]["readers"]) == 2  # one rank, two readers
    Trainer(stage(), run_config(split, data_workers=2)).run()
    expected = read_tensors(whole / UNET_FOLDER / "model.safetensors")
    actual = read_tensors(split / UNET_FOLDER / "model.safetensors")
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    records = MetricsLog(split / METRICS_FILE).records()
    assert [r["loss"] for r in records] == [
        r["loss"] for r in MetricsLog(whole / METRICS_FILE).records()
    ]
    # 4 steps of 2 samples, a batch from each reader in turn: reader 0 (img0, img2, img4) read
    # its good two twice and met img0 twice; reader 1 (img1, img3, img5) met img3 twice
    last = records[-1]
    assert (last["data_samples_read"], last["data_unreadable_images"]) == (8, 2)
    assert last["data_missing_captions"] == 2 and last["data_corrupt_shards"] == 0


def test_resume_with_another_image_size_is_refused(teacher_dir, photos, tmp_path):
    Trainer(make_stage(teacher_dir, photos), run_config(tmp_path, stop_after=1)).run()
    teacher = load_model(teacher_dir)
    config = UnetTrainConfig(data=DataSpec(str(photos)), image_size=2 * SIZE)
    other = UnetStage(teacher, student_config(teacher), config)
    with pytest.raises(InputError, match=f"data_image_size was {SIZE}, now {2 * SIZE}"):
        Trainer(other, run_config(tmp_path)).run()


def test_cli_trains_a_preset_student_that_loads_with_the_teachers_parts(
    teacher_dir, photos, tmp_path
):
    _register_commands()
    out = tmp_path / "run"
    args = ["train", "unet", "--teacher", str(teacher_dir), "--preset", "tiny", "--data",
            str(photos), "--out", str(out), "--image-size", str(SIZE), "--steps", "2",
            "--batch-size", "2", "--log-every", "1", "--threads", "1"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    student, teacher = load_checkpoint(out / UNET_FOLDER), load_model(teacher_dir)
    assert student.config.unet.down[0].channels == 32  # the tiny preset's UNet, not the teacher's
    assert student.scheduler.prediction_type == teacher.scheduler.prediction_type == "epsilon"
    for key, tensor in teacher.text_encoder.state_dict().items():
        assert torch.equal(student.text_encoder.state_dict()[key], tensor), key
    both = ["train", "unet", "--teacher", str(teacher_dir), "--out", str(tmp_path / "x")]
    refused = CliRunner().invoke(app, both)
    assert refused.exit_code == 2 and "exactly one of --data and --cache" in refused.output


def test_a_student_that_cannot_read_the_teachers_text_is_refused(teacher_dir, photos):
    teacher = load_model(teacher_dir)
    wrong = replace(student_config(teacher), cross_attention_dim=64)
    with pytest.raises(ConfigError, match="cross_attention_dim 64"):
        UnetStage(teacher, wrong, UnetTrainConfig(data=DataSpec(str(photos)), image_size=SIZE))


def test_robust_training_skips_blocks_and_the_skipped_get_no_gradient(teacher_dir, photos):
    stage = make_stage(teacher_dir, photos, caption_dropout=0.0, robust_skip_prob=1.0)
    names = stage.skippable
    assert any(name.endswith("transformer") for name in names)
    assert any(name.endswith("resnet") for name in names)  # channel-keeping ResNets only
    for name in names:
        if name.endswith("resnet"):
            assert stage.unet.get_submodule(name).conv_shortcut is None
    batch = fixed_batch(photos, 2)
    other = {**batch, "caption": ["something else", "and more"]}
    outputs = {}
    for p in (1.0, 0.0):
        stage.config = replace(stage.config, robust_skip_prob=p)
        for label, b in (("a", batch), ("b", other)):
            recorder = Recorder(stage.unet)
            stage.unet.zero_grad(set_to_none=True)
            loss, metrics = stage.loss({"unet": recorder}, b, 0, torch.Generator().manual_seed(1))
            loss.backward()
            outputs[p, label] = recorder.calls[0][3].detach()
            grads = {n: q.grad for n, q in stage.unet.named_parameters()}
            transformer_grads = [g for n, g in grads.items() if ".transformer." in n]
            if p == 1.0:
                assert metrics["skipped_blocks"] == len(names)
                assert all(g is None for g in transformer_grads)
            else:
                assert all(g is not None for g in transformer_grads)
    # Every cross-attention skipped: the student no longer reads the captions.
    assert torch.equal(outputs[1.0, "a"], outputs[1.0, "b"])
    assert not torch.allclose(outputs[0.0, "a"], outputs[0.0, "b"])


def test_robust_training_under_torchrun_keeps_ranks_in_step(teacher_dir, photos, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", __file__, str(teacher_dir), str(photos),
               str(tmp_path / "run")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = MetricsLog(tmp_path / "run" / METRICS_FILE).records()
    assert len(records) == 3 and all(np.isfinite(r["loss"]) for r in records)
    assert all(r["params_sha256_by_rank"][0] == r["params_sha256_by_rank"][1] for r in records)
    assert records[0]["skipped_blocks"] > 0


if __name__ == "__main__":  # what each torchrun process of the test above runs
    teacher_path, photos_path, out_path = (Path(a) for a in sys.argv[1:4])
    torch.set_num_threads(1)
    robust = make_stage(teacher_path, photos_path, robust_skip_prob=0.5)
    Trainer(robust, run_config(out_path, steps=3)).run()
