"""Step distillation (train/stages/distill.py): the teacher's steps against diffusers' DDIM, the
one-step target, the student's starting point, training, and the `sfmobile distill` command."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from sfmobile.errors import ConfigError
from sfmobile.models.random_init import random_model
from sfmobile.scheduler import DdimScheduler, SchedulerConfig
from sfmobile.train.sampling import encode_captions
from sfmobile.train.stages.distill import DistillConfig, DistillStage, teacher_chains
from sfmobile.weights import load_model
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

V_TRAILING = SchedulerConfig(
    prediction_type="v_prediction", timestep_spacing="trailing", default_steps=8
)


def tiny_teacher(seed: int = 0):
    model = random_model("tiny", seed=seed)
    model.scheduler = V_TRAILING
    return model


def diffusers_ddim() -> DDIMScheduler:
    return DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        set_alpha_to_one=False,
        clip_sample=False,
    )


@pytest.mark.parametrize(("teacher_steps", "student_steps"), [(32, 16), (16, 8), (32, 8)])
def test_teacher_chains_end_where_the_student_lands(teacher_steps: int, student_steps: int) -> None:
    """Each chain starts on the student's grid, passes the teacher's grid points in between and
    ends where diffusers' DDIM step from t lands (t - 1000 // n; the final step past t = 0)."""
    reference = diffusers_ddim()
    reference.set_timesteps(teacher_steps)
    teacher_grid = [int(t) for t in reference.timesteps]
    reference.set_timesteps(student_steps)
    student_grid = [int(t) for t in reference.timesteps]
    chains = teacher_chains(DdimScheduler(V_TRAILING), DistillConfig(student_steps, teacher_steps))
    assert [chain[0] for chain in chains] == student_grid
    for chain in chains:
        assert chain[-1] == max(chain[0] - 1000 // student_steps, -1)
        assert all(t in teacher_grid for t in chain[:-1])
        assert len(chain) == teacher_steps // student_steps + 1
    assert sorted({t for chain in chains for t in chain[:-1]}, reverse=True) == teacher_grid


def test_grids_that_do_not_nest_are_refused() -> None:
    leading = replace(V_TRAILING, timestep_spacing="leading", steps_offset=1)
    with pytest.raises(ConfigError, match="does not nest"):
        teacher_chains(DdimScheduler(leading), DistillConfig(6, 18))
    with pytest.raises(ConfigError, match="multiple"):
        DistillConfig(8, 20)
    with pytest.raises(ConfigError, match="at least twice"):
        DistillConfig(8, 8)


@pytest.mark.parametrize(("teacher_steps", "student_steps"), [(20, 10), (40, 10), (8, 4)])
def test_teacher_steps_match_diffusers_guided_sampling(teacher_steps, student_steps) -> None:
    """k guided teacher steps from z_t equal diffusers' DDIMScheduler stepping the teacher's
    grid with the same guided model outputs (step counts that divide 1000, where diffusers'
    t - 1000 // n rule lands exactly on the grid)."""
    teacher = tiny_teacher()
    stage = DistillStage(teacher, DistillConfig(student_steps, teacher_steps))
    k = teacher_steps // student_steps
    generator = torch.Generator().manual_seed(1)
    z_t = torch.randn((2, 4, 8, 8), generator=generator)
    captions = ["a red circle", "a blue square"]
    with torch.no_grad():
        cond = encode_captions(teacher.text_encoder, stage.tokenizer, captions)
        uncond = encode_captions(teacher.text_encoder, stage.tokenizer, ["", ""])
        w = torch.tensor([3.0, 9.0])
        index = student_steps - 2
        chains = stage.chains[[index, index]]
        ours = stage._teacher_steps(z_t, chains, cond, uncond, w, guided=True)

        reference = diffusers_ddim()
        reference.set_timesteps(teacher_steps)
        z = z_t.clone()
        for t in reference.timesteps[k * index : k * index + k]:
            batch_t = torch.full((4,), float(t))
            both = teacher.unet(torch.cat([z, z]), batch_t, torch.cat([uncond, cond]))
            out_uncond, out_cond = both.chunk(2)
            guided = out_uncond + w[:, None, None, None] * (out_cond - out_uncond)
            z = reference.step(guided, t, z).prev_sample
    np.testing.assert_allclose(ours.numpy(), z.numpy(), atol=2e-5)


def test_one_step_target_lands_on_the_teacher_result() -> None:
    """A single DDIM step that predicts x_target takes z_t exactly to the teacher's z_t''."""
    stage = DistillStage(tiny_teacher(), DistillConfig(8, 16))
    scheduler = stage.scheduler
    generator = torch.Generator().manual_seed(2)
    z_t = torch.randn((8, 4, 8, 8), generator=generator)
    z_target = torch.randn((8, 4, 8, 8), generator=generator)
    chains = stage.chains  # every student step, the last one (to t = -1) included
    t, t_next = chains[:, 0], chains[:, -1]
    x0 = stage._one_step_x0(z_t, z_target, t, t_next)
    landed = scheduler.ddim_step_to(z_t, x0, None, t, t_next)
    np.testing.assert_allclose(landed.numpy(), z_target.numpy(), atol=1e-4)


@pytest.mark.parametrize("guidance_conditioned", [False, True])
def test_student_starts_as_the_teacher(guidance_conditioned: bool) -> None:
    teacher = tiny_teacher()
    stage = DistillStage(teacher, DistillConfig(8, 16, guidance_conditioned=guidance_conditioned))
    generator = torch.Generator().manual_seed(3)
    z = torch.randn((2, 4, 8, 8), generator=generator)
    t = torch.tensor([999.0, 500.0])
    text = torch.randn((2, 77, teacher.config.text_encoder.width), generator=generator)
    with torch.no_grad():
        expected = teacher.unet(z, t, text)
        extra = (torch.tensor([7.5, 2.0]),) if guidance_conditioned else ()
        got = stage.student(z, t, text, *extra)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("guidance_conditioned", [False, True])
def test_distillation_lowers_the_loss_on_a_fixed_batch(guidance_conditioned: bool) -> None:
    teacher = tiny_teacher()
    config = DistillConfig(2, 4, cfg_aware_prob=1.0, guidance_conditioned=guidance_conditioned)
    stage = DistillStage(teacher, config)
    images = torch.rand((4, 3, 32, 32), generator=torch.Generator().manual_seed(4)) * 2 - 1
    batch = {"image": images, "caption": ["a red circle", "a blue square", "a", "b"]}
    optimizer = torch.optim.Adam(stage.student.parameters(), lr=1e-3)
    models = stage.trainable()

    def loss_at(step: int) -> torch.Tensor:
        loss, _ = stage.loss(models, batch, 0, torch.Generator().manual_seed(5))
        return loss

    first = loss_at(0).item()
    for step in range(20):
        optimizer.zero_grad()
        loss_at(step).backward()
        optimizer.step()
    assert loss_at(0).item() < 0.7 * first


def test_distill_command_writes_a_student_that_generates(tmp_path) -> None:
    from typer.testing import CliRunner

    from sfmobile.backends.torch_backend import TorchBackend
    from sfmobile.cli.app import _register_commands, app
    from sfmobile.pipeline import Pipeline

    save_checkpoint(tiny_teacher(), tmp_path / "teacher")
    _register_commands()
    args = ["distill", "--from", str(tmp_path / "teacher"), "--steps", "2", "--teacher-steps"]
    args += ["4", "--out", str(tmp_path / "run"), "--train-steps", "3", "--batch-size", "2"]
    args += ["--image-size", "64", "--guidance-conditioned", "--threads", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    student = load_model(tmp_path / "run" / "student")
    assert student.scheduler.default_steps == 2
    assert student.config.unet.guidance_embedding
    generation = Pipeline(TorchBackend(student)).generate(
        "a red circle", steps=2, guidance_scale=5.0, height=64, width=64
    )
    assert len(generation.timings.unet) == 2  # one call per step: no CFG batch
    assert np.isfinite(generation.latents).all()


def test_an_epsilon_leading_teacher_gives_a_v_prediction_trailing_student() -> None:
    """SD-1.5's scheduler (epsilon, leading spacing): the student's is the same noise schedule
    with v-prediction and trailing spacing (tests/test_train_stages_real_data.py checks the
    converted targets)."""
    teacher = random_model("tiny")
    assert teacher.scheduler.prediction_type == "epsilon"
    assert teacher.scheduler.timestep_spacing == "leading"
    student = DistillStage(teacher, DistillConfig(8, 16)).model().scheduler
    assert student.prediction_type == "v_prediction" and student.timestep_spacing == "trailing"
    assert (student.beta_start, student.beta_end) == (
        teacher.scheduler.beta_start,
        teacher.scheduler.beta_end,
    )
