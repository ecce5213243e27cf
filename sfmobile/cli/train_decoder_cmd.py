"""`sfmobile train decoder`: stage 4, SnapFusion's half-channel decoder distilled from the
teacher's full one (docs/training.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from sfmobile.cli.app import user_errors_exit_2
from sfmobile.cli.train_cmd import (
    CHECKPOINT_EVERY,
    DEVICE,
    GRAD_ACCUMULATION,
    GRADIENT_CHECKPOINTING,
    IMAGE_SIZE,
    LOG_EVERY,
    PRECISION,
    SEED,
    STOP_AFTER,
    THREADS,
    lr_option,
    run_stage,
    stage_console,
    steps_option,
    train_app,
    warmup_steps_option,
)
from sfmobile.errors import CheckpointError, InputError


def teacher_checkpoint(path: Path) -> Path:
    """The checkpoint folder `path` names: itself, or the teacher/ folder of a `train teacher`
    run folder."""
    from sfmobile.train.stages.teacher import TEACHER_FOLDER
    from sfmobile.weights.sfmobile_checkpoint import CONFIG_FILE

    path = Path(path)
    if not path.exists():
        raise InputError(f"--teacher {path}: no such folder")
    if not path.is_dir():
        raise InputError(f"--teacher {path}: not a folder (expected an sfmobile checkpoint)")
    for folder in (path, path / TEACHER_FOLDER):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CheckpointError(
        f"--teacher {path}: no sfmobile checkpoint here ({CONFIG_FILE} in it or in "
        f"{TEACHER_FOLDER}/); run `sfmobile train teacher` first"
    )


@train_app.command("decoder")
@user_errors_exit_2
def train_decoder(
    teacher: Path = typer.Option(..., help="Teacher checkpoint folder (or its run folder)."),
    out: Path = typer.Option(
        ..., help="Run folder: latent_pool.safetensors, train_state.pt, metrics.jsonl, decoder/."
    ),
    steps: int = steps_option(3000),
    batch_size: int = typer.Option(
        16, help="Latents per step per process: half from the pool, half encoded scenes."
    ),
    lr: float = lr_option(1e-3),
    warmup_steps: int = warmup_steps_option(100),
    pool_size: int = typer.Option(1024, help="Teacher latents generated once into OUT/."),
    seed: int = SEED,
    image_size: int = IMAGE_SIZE,
    checkpoint_every: int = CHECKPOINT_EVERY,
    log_every: int = LOG_EVERY,
    threads: int = THREADS,
    device: str = DEVICE,
    precision: str = PRECISION,
    grad_accumulation: int = GRAD_ACCUMULATION,
    gradient_checkpointing: bool = GRADIENT_CHECKPOINTING,
    stop_after: int = STOP_AFTER,
) -> None:
    """Stage 4: train a half-channel VAE decoder to reproduce the teacher's decoder; writes
    OUT/decoder/ (a VAE folder: teacher encoder + pruned decoder) and OUT/decoder/report.json."""
    import torch

    from sfmobile.train.engine.loop import TrainConfig
    from sfmobile.train.stages.decoder import DECODER_FOLDER, DecoderStage
    from sfmobile.weights.sfmobile_checkpoint import load_checkpoint

    config = TrainConfig(
        out=out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        image_size=image_size,
        checkpoint_every=checkpoint_every,
        log_every=log_every,
        warmup_steps=warmup_steps,
        lr_schedule="cosine",
        stop_after=stop_after,
        threads=threads,
        device=device,
        precision=precision,
        grad_accumulation=grad_accumulation,
        gradient_checkpointing=gradient_checkpointing,
    )
    if pool_size < 1:
        raise InputError(f"--pool-size must be >= 1, got {pool_size}")
    if threads:
        torch.set_num_threads(threads)  # the latent pool is made before the Trainer runs
    console = stage_console()
    model = load_checkpoint(teacher_checkpoint(teacher))
    stage = DecoderStage(
        model, out, seed=seed, image_size=image_size, pool_size=pool_size, console=console
    )
    run_stage(stage, config, console, out / DECODER_FOLDER)
