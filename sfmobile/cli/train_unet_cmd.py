"""`sfmobile train unet`: the efficient UNet initialised from a real teacher (SD-1.5) and trained
on your image-caption data with output distillation from the teacher (docs/training.md,
"Training on your own data")."""

from __future__ import annotations

from pathlib import Path

import typer

from sfmobile.cli.app import user_errors_exit_2
from sfmobile.cli.data_options import (
    BUCKETS,
    CACHE,
    DATA,
    DATA_FORMAT,
    TEACHER_PRESET,
    real_data,
)
from sfmobile.cli.engine_options import ENGINE, EngineOptions, engine_options
from sfmobile.cli.train_cmd import (
    CAPTION_DROPOUT,
    SEED,
    batch_size_option,
    ema_decay_option,
    lr_option,
    run_stage,
    stage_console,
    steps_option,
    train_app,
    warmup_steps_option,
)


@train_app.command("unet")
@user_errors_exit_2
@engine_options(data_workers=True)
def train_unet(
    teacher: Path = typer.Option(
        ..., help="The teacher: a diffusers folder, sfmobile checkpoint or CompVis file (SD-1.5)."
    ),
    out: Path = typer.Option(..., help="Run folder: train_state.pt, metrics.jsonl, unet/."),
    data: str = DATA,
    cache: Path = CACHE,
    data_format: str = DATA_FORMAT,
    preset: str = typer.Option("snapfusion", help="The student's architecture (its UNet)."),
    teacher_preset: str = TEACHER_PRESET,
    image_size: int = typer.Option(512, help="Images are resized and centre-cropped to this."),
    buckets: str = BUCKETS,
    steps: int = steps_option(100000),
    batch_size: int = batch_size_option(8),
    lr: float = lr_option(1e-5),
    warmup_steps: int = warmup_steps_option(500),
    noise_weight: float = typer.Option(1.0, help="Weight of the noise-prediction loss."),
    distill_weight: float = typer.Option(1.0, help="Weight of the teacher-output loss."),
    caption_dropout: float = CAPTION_DROPOUT,
    robust_skip_prob: float = typer.Option(
        0.0,
        help="SnapFusion's robust training: skip each transformer and channel-keeping ResNet "
        "with this probability per step (0: off).",
    ),
    ema_decay: float = ema_decay_option(0.9999),
    seed: int = SEED,
    engine: EngineOptions = ENGINE,
) -> None:
    """SnapFusion's section 3: the --preset UNet initialised from the teacher's and trained with
    the noise loss plus distillation from the teacher's UNet; the text encoder and VAE stay the
    teacher's, frozen. Writes OUT/unet/, an sfmobile checkpoint."""
    from sfmobile.presets import preset as preset_config
    from sfmobile.train.stages.unet import UNET_FOLDER, UnetStage, UnetTrainConfig
    from sfmobile.weights import load_model

    source = real_data(data, data_format, cache, image_size, buckets, engine.data_workers)
    unet_config = UnetTrainConfig(
        data=source.data,
        cache=source.cache,
        image_size=source.image_size,
        buckets=source.buckets,
        noise_weight=noise_weight,
        distill_weight=distill_weight,
        caption_dropout=caption_dropout,
        robust_skip_prob=robust_skip_prob,
    )
    config = engine.train_config(
        out=out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        warmup_steps=warmup_steps,
        ema_decay=ema_decay,
    )
    console = stage_console()
    stage = UnetStage(
        load_model(teacher, teacher_preset), preset_config(preset).unet, unet_config, seed
    )
    console.print(f"student {preset}: {stage.init_report.summary()}")
    run_stage(stage, config, console, out / UNET_FOLDER)
