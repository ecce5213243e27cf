"""`sfmobile distill`: SnapFusion's CFG-aware step distillation of a teacher checkpoint (an
sfmobile checkpoint, a diffusers folder or a CompVis file; epsilon or v-prediction) into a
v-prediction student that samples in --steps steps, on the synthetic scenes or on --data /
--cache (docs/training.md, stage 3 and "Training on your own data")."""

from __future__ import annotations

from pathlib import Path

import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.cli.data_options import (
    BUCKETS,
    CACHE,
    DATA,
    DATA_FORMAT,
    DATA_IMAGE_SIZE,
    TEACHER_PRESET,
    data_or_scenes,
)
from sfmobile.cli.engine_options import ENGINE, EngineOptions, engine_options
from sfmobile.cli.train_cmd import (
    SEED,
    batch_size_option,
    ema_decay_option,
    lr_option,
    run_stage,
    stage_console,
    steps_option,
    warmup_steps_option,
)


@app.command("distill")
@user_errors_exit_2
@engine_options(data_workers=True)
def distill(
    teacher: Path = typer.Option(
        ...,
        "--from",
        "--teacher",
        help="Teacher: an sfmobile checkpoint, a diffusers folder or a CompVis single file.",
    ),
    teacher_preset: str = TEACHER_PRESET,
    data: str = DATA,
    cache: Path = CACHE,
    data_format: str = DATA_FORMAT,
    buckets: str = BUCKETS,
    steps: int = typer.Option(..., help="The student's sampling steps (e.g. 16, then 8)."),
    out: Path = typer.Option(..., help="Run folder: train_state.pt, metrics.jsonl, student/."),
    teacher_steps: int = typer.Option(
        None, help="The teacher's sampling steps (a multiple of --steps; default: its own)."
    ),
    train_steps: int = steps_option(2000),
    batch_size: int = batch_size_option(16),
    lr: float = lr_option(1e-4),
    warmup_steps: int = warmup_steps_option(50),
    cfg_aware_prob: float = typer.Option(0.5, help="Share of steps with the CFG-aware loss."),
    guidance_min: float = typer.Option(2.0, help="Lowest guidance scale the CFG-aware loss draws."),
    guidance_max: float = typer.Option(14.0, help="Highest guidance scale drawn."),
    gamma: float = typer.Option(0.1, help="Weight of the ordinary v-prediction loss."),
    guidance_conditioned: bool = typer.Option(
        False, help="Student takes the guidance scale as input (one UNet call per step)."
    ),
    default_guidance: float = typer.Option(4.5, help="Guidance the student's checkpoint suggests."),
    ema_decay: float = ema_decay_option(0.995),
    seed: int = SEED,
    image_size: int = DATA_IMAGE_SIZE,
    engine: EngineOptions = ENGINE,
) -> None:
    """Distil a teacher into a --steps-step v-prediction student; writes OUT/student/."""
    from sfmobile.train.stages.distill import STUDENT_FOLDER, DistillConfig, DistillStage
    from sfmobile.weights import load_model

    source, scene_size = data_or_scenes(
        data, data_format, cache, image_size, buckets, engine.data_workers
    )
    model = load_model(teacher, teacher_preset)
    config = DistillConfig(
        student_steps=steps,
        teacher_steps=teacher_steps or model.scheduler.default_steps,
        cfg_aware_prob=cfg_aware_prob,
        guidance_range=(guidance_min, guidance_max),
        gamma=gamma,
        guidance_conditioned=guidance_conditioned,
        default_guidance=default_guidance,
    )
    train_config = engine.train_config(
        out=out,
        steps=train_steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        image_size=scene_size,
        warmup_steps=warmup_steps,
        lr_schedule="cosine",
        ema_decay=ema_decay,
    )
    stage = DistillStage(model, config, seed=seed, data=source)
    run_stage(stage, train_config, stage_console(), out / STUDENT_FOLDER)
