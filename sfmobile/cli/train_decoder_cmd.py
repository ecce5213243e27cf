"""`sfmobile train decoder`: stage 4, SnapFusion's half-channel decoder distilled from the
teacher's full one, on the synthetic scenes or on --data / --cache (docs/training.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from sfmobile.cli.app import user_errors_exit_2
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
    lr_option,
    run_stage,
    stage_console,
    steps_option,
    train_app,
    warmup_steps_option,
)
from sfmobile.errors import InputError

if TYPE_CHECKING:
    from sfmobile.models.stable_diffusion import StableDiffusion


def load_teacher(path: Path, preset: str | None) -> StableDiffusion:
    """The teacher `path` names: the teacher/ checkpoint of a `train teacher` run folder, or an
    sfmobile checkpoint, a diffusers folder or a CompVis file (weights.load_model)."""
    from sfmobile.train.stages.teacher import TEACHER_FOLDER
    from sfmobile.weights import load_model
    from sfmobile.weights.sfmobile_checkpoint import is_sfmobile_checkpoint

    path = Path(path)
    if not path.exists():
        raise InputError(f"--teacher {path}: no such file or folder")
    if path.is_dir() and is_sfmobile_checkpoint(path / TEACHER_FOLDER):
        path = path / TEACHER_FOLDER
    return load_model(path, preset)


@train_app.command("decoder")
@user_errors_exit_2
@engine_options(data_workers=True)
def train_decoder(
    teacher: Path = typer.Option(
        ...,
        "--teacher",
        "--from",
        help="Teacher: an sfmobile checkpoint (or the run folder of `train teacher`), a "
        "diffusers folder or a CompVis single file.",
    ),
    out: Path = typer.Option(
        ..., help="Run folder: latent_pool.safetensors, train_state.pt, metrics.jsonl, decoder/."
    ),
    teacher_preset: str = TEACHER_PRESET,
    data: str = DATA,
    cache: Path = CACHE,
    data_format: str = DATA_FORMAT,
    buckets: str = BUCKETS,
    steps: int = steps_option(3000),
    batch_size: int = typer.Option(
        16, help="Latents per step per process: half from the pool, half encoded images."
    ),
    lr: float = lr_option(1e-3),
    warmup_steps: int = warmup_steps_option(100),
    pool_size: int = typer.Option(1024, help="Teacher latents generated once into OUT/."),
    seed: int = SEED,
    image_size: int = DATA_IMAGE_SIZE,
    engine: EngineOptions = ENGINE,
) -> None:
    """Stage 4: train a half-channel VAE decoder to reproduce the teacher's decoder; writes
    OUT/decoder/ (a VAE folder: teacher encoder + pruned decoder) and OUT/decoder/report.json."""
    import torch

    from sfmobile.train.stages.decoder import DECODER_FOLDER, DecoderStage

    source, scene_size = data_or_scenes(
        data, data_format, cache, image_size, buckets, engine.data_workers
    )
    config = engine.train_config(
        out=out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        image_size=scene_size,
        warmup_steps=warmup_steps,
        lr_schedule="cosine",
    )
    if pool_size < 1:
        raise InputError(f"--pool-size must be >= 1, got {pool_size}")
    if engine.threads:
        torch.set_num_threads(engine.threads)  # the latent pool is made before the Trainer runs
    console = stage_console()
    stage = DecoderStage(
        load_teacher(teacher, teacher_preset),
        out,
        seed=seed,
        image_size=scene_size,
        pool_size=pool_size,
        console=console,
        data=source,
        device=engine.device,
    )
    run_stage(stage, config, console, out / DECODER_FOLDER)
