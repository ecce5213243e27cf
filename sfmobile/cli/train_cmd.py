"""`sfmobile train vae|teacher`: the demo model's training stages (docs/training.md).

Every stage runs alone or under `torchrun --standalone --nproc_per_node=N --no-python sfmobile
train ...` unchanged, and resumes when run again with the same --out. Later stages add their
command to `train_app` from their own module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.cli.engine_options import ENGINE, EngineOptions, engine_options
from sfmobile.errors import InputError
from sfmobile.presets import PRESET_NAMES

train_app = typer.Typer(
    help="Train the demo model stage by stage (alone or under torchrun; re-run to resume).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

# Options every stage shares (the per-stage defaults differ and stay in each command).
SEED = typer.Option(0, help="Seed of the initial weights and of every random draw.")
IMAGE_SIZE = typer.Option(64, help="Scene size in pixels: 64 or 128.")
PRESET = typer.Option("demo", help="Architecture: " + ", ".join(PRESET_NAMES))
CAPTION_DROPOUT = typer.Option(0.1, help="Share of empty captions (for guidance).")


# Options every stage has with its own default: one help text each.
def steps_option(default: int) -> Any:
    return typer.Option(default, help="Optimizer steps in all.")


def batch_size_option(default: int) -> Any:
    return typer.Option(default, help="Images per step per process.")


def lr_option(default: float) -> Any:
    return typer.Option(default, help="AdamW learning rate (after warm-up).")


def warmup_steps_option(default: int) -> Any:
    return typer.Option(default, help="Linear learning-rate warm-up.")


def ema_decay_option(default: float) -> Any:
    return typer.Option(default, help="EMA of the weights the checkpoint gets; 0: off.")


def stage_console() -> Console:
    """Where training commands report: stderr, so stdout stays free for pipes."""
    return Console(stderr=True, soft_wrap=True)


def run_stage(stage, config, console: Console, written: Path) -> None:
    """Run `stage` with the Trainer and say (on rank 0) what was written or how to resume;
    an interrupted run exits with 130 as Ctrl-C does."""
    from sfmobile.train.engine.loop import Trainer

    trainer = Trainer(stage, config, console)
    result = trainer.run()
    if not trainer.ranks.is_main:
        return
    if result.finished:
        console.print(f"wrote {written} (step {result.step})")
    else:
        console.print(
            f"{config.out}: stopped at step {result.step}; run the same command to resume"
        )
    if result.interrupted:
        raise typer.Exit(code=130)


@train_app.command("vae")
@user_errors_exit_2
@engine_options(data_workers=False)
def train_vae(
    out: Path = typer.Option(..., help="Run folder: train_state.pt, metrics.jsonl, vae/."),
    steps: int = steps_option(6000),
    batch_size: int = batch_size_option(8),
    lr: float = lr_option(5e-4),
    warmup_steps: int = warmup_steps_option(100),
    kl_weight: float = typer.Option(1e-6, help="KL weight, latent-diffusion's convention."),
    init: Path = typer.Option(
        None,
        help="Start from this trained VAE (a `train vae` run folder or its vae/), on batches "
        "drawn with a seed mixed from --seed and its weights (not the ones that trained it).",
    ),
    freeze_encoder: bool = typer.Option(
        False,
        "--freeze-encoder",
        help="With --init: train the decoder only, so latents (and a teacher trained on them) "
        "stay valid.",
    ),
    preset: str = PRESET,
    seed: int = SEED,
    image_size: int = IMAGE_SIZE,
    engine: EngineOptions = ENGINE,
) -> None:
    """Stage 1: train the autoencoder on the scenes; writes OUT/vae/ with its scaling factor."""
    from sfmobile.presets import preset as preset_config
    from sfmobile.train.stages.vae import VAE_FOLDER, VaeStage, load_vae

    config = engine.train_config(
        out=out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        image_size=image_size,
        warmup_steps=warmup_steps,
        lr_schedule="cosine",
    )
    stage = VaeStage(
        preset_config(preset).vae,
        seed=seed,
        image_size=image_size,
        kl_weight=kl_weight,
        init=load_vae(init) if init is not None else None,
        freeze_encoder=freeze_encoder,
    )
    run_stage(stage, config, stage_console(), out / VAE_FOLDER)


@train_app.command("teacher")
@user_errors_exit_2
@engine_options(data_workers=False)
def train_teacher(
    vae: Path = typer.Option(..., help="The `train vae` run folder (or its vae/ folder)."),
    out: Path = typer.Option(..., help="Run folder: train_state.pt, metrics.jsonl, teacher/."),
    steps: int = steps_option(10000),
    batch_size: int = batch_size_option(16),
    lr: float = lr_option(3e-4),
    warmup_steps: int = warmup_steps_option(200),
    caption_dropout: float = CAPTION_DROPOUT,
    ema_decay: float = ema_decay_option(0.999),
    init: Path = typer.Option(
        None,
        help="Continue this trained teacher checkpoint (its UNet and text encoder; --preset is "
        "then ignored) under a fresh learning-rate schedule, on batches drawn with a seed "
        "mixed from --seed and its weights (not the ones that trained it).",
    ),
    preset: str = PRESET,
    seed: int = SEED,
    image_size: int = IMAGE_SIZE,
    engine: EngineOptions = ENGINE,
) -> None:
    """Stage 2: train the text encoder + UNet as a v-prediction teacher on the frozen VAE;
    writes OUT/teacher/, an sfmobile checkpoint `sfmobile generate --model` reads."""
    from sfmobile.presets import preset as preset_config
    from sfmobile.train.stages.teacher import TEACHER_FOLDER, TeacherStage
    from sfmobile.train.stages.vae import load_vae
    from sfmobile.weights.sfmobile_checkpoint import is_sfmobile_checkpoint, load_checkpoint

    architecture = preset_config(preset)
    if init is not None and not is_sfmobile_checkpoint(init):
        raise InputError(f"--init {init}: not an sfmobile checkpoint (no sfmobile.json)")
    initial = load_checkpoint(init) if init is not None else None
    config = engine.train_config(
        out=out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        image_size=image_size,
        warmup_steps=warmup_steps,
        lr_schedule="cosine",
        ema_decay=ema_decay,
    )
    stage = TeacherStage(
        load_vae(vae),
        architecture.unet,
        architecture.text_encoder,
        seed=seed,
        caption_dropout=caption_dropout,
        init=initial,
    )
    run_stage(stage, config, stage_console(), out / TEACHER_FOLDER)
