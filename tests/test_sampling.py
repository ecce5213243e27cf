"""train/sampling.py (batched, for training and evaluation) against Pipeline.generate (the
reference runtime, one prompt at a time): same model, prompts, seeds, steps and guidance give
the same final latents; and every stage reads the model's own tokenizer."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.models.random_init import random_model
from sfmobile.pipeline import Pipeline
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.train.sampling import sample_latents
from sfmobile.train.stages.distill import DistillConfig, DistillStage, student_unet
from sfmobile.train.stages.teacher import TeacherStage

SIZE = 32  # pixels: the tiny preset downsamples by 2 and its UNet needs a multiple of 8
PROMPTS = ["a red cube on a table", "two cats"]
SEEDS = [3, 11]


def permuted_tokenizer(folder: Path) -> Path:
    """The shipped vocabulary with every id reversed: a model's own tokenizer that gives other
    ids than the default, so a stage that ignores tokenizer_dir is caught."""
    ClipTokenizer.default().save(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    last = len(vocab) - 1
    (folder / "vocab.json").write_text(
        json.dumps({token: last - id_ for token, id_ in vocab.items()}), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = permuted_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    return replace(random_model("tiny", seed=5), tokenizer_dir=folder)


def pipeline_latents(model, guidance: float, steps: int, cfg_batch: int) -> np.ndarray:
    pipeline = Pipeline(TorchBackend(model), cfg_batch=cfg_batch)
    return np.concatenate(
        [
            pipeline.generate(
                prompt, steps=steps, guidance_scale=guidance, seed=seed, height=SIZE, width=SIZE
            ).latents
            for prompt, seed in zip(PROMPTS, SEEDS, strict=True)
        ]
    )


@pytest.mark.parametrize(("guidance", "cfg_batch"), [(1.0, 2), (7.5, 2), (7.5, 1)])
def test_sample_latents_equal_pipeline_generate(model, guidance, cfg_batch):
    expected = pipeline_latents(model, guidance, steps=3, cfg_batch=cfg_batch)
    got = sample_latents(model, PROMPTS, SEEDS, 3, guidance, latent_size=SIZE // 2).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_sample_latents_equal_pipeline_for_a_guidance_conditioned_student(model):
    unet = student_unet(model.unet, guidance_conditioned=True, seed=0)
    with torch.no_grad():  # a guidance embedding that is not zero, so w reaches the output
        for parameter in unet.guidance_embed.parameters():
            parameter.normal_(0, 0.5)
    student = replace(model, unet=unet, config=replace(model.config, unet=unet.config)).eval()
    expected = pipeline_latents(student, 4.0, steps=2, cfg_batch=2)
    got = sample_latents(student, PROMPTS, SEEDS, 2, 4.0, latent_size=SIZE // 2).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_the_model_tokenizer_is_read_not_the_shipped_one(model):
    ours = ClipTokenizer.of_model(model.tokenizer_dir).encode("a red cube")
    assert ours != ClipTokenizer.default().encode("a red cube")
    assert ClipTokenizer.of_model(None).encode("a red cube") == ClipTokenizer.default().encode(
        "a red cube"
    )


def test_teacher_and_distill_stages_use_the_model_tokenizer(model):
    expected = ClipTokenizer.of_model(model.tokenizer_dir).encode("a red cube")
    teacher = TeacherStage(model.vae, model.config.unet, model.config.text_encoder, init=model)
    assert teacher.tokenizer.encode("a red cube") == expected
    assert teacher.model().tokenizer_dir == model.tokenizer_dir
    config = DistillConfig(student_steps=2, teacher_steps=4)
    distill = DistillStage(replace(model, scheduler=_v_prediction(model.scheduler)), config)
    assert distill.tokenizer.encode("a red cube") == expected
    assert distill.model().tokenizer_dir == model.tokenizer_dir


def _v_prediction(scheduler):
    return replace(scheduler, prediction_type="v_prediction", timestep_spacing="trailing")
