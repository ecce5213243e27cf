"""`sfmobile generate`: one image from a checkpoint or an exported bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from PIL.PngImagePlugin import PngInfo
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sfmobile.backends.factory import BACKENDS, open_backend
from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError


def read_init_latents(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"--init-latents {path}: not a readable .npy file ({error})") from error
    return array


@app.command()
@user_errors_exit_2
def generate(
    model: Path = typer.Option(
        ..., help="diffusers folder, sfmobile checkpoint, CompVis file, or exported bundle"
    ),
    prompt: str = typer.Option(..., help="What to draw."),
    negative_prompt: str = typer.Option("", help="What to steer away from."),
    steps: int = typer.Option(8, help="Denoising steps."),
    guidance: float = typer.Option(7.5, help="Classifier-free guidance scale (<= 1: off)."),
    seed: int = typer.Option(0, help="Seed of the portable initial noise (docs/noise.md)."),
    height: int = typer.Option(512, help="Image height in pixels (multiple of 8)."),
    width: int = typer.Option(512, help="Image width in pixels (multiple of 8)."),
    backend: str = typer.Option("torch", help="Runtime: " + " | ".join(BACKENDS)),
    preset: str = typer.Option(None, help="Architecture of a single-file checkpoint."),
    cfg_batch: int = typer.Option(2, help="UNet batch for guidance: 2 (one call) or 1 (two)."),
    init_latents: Path = typer.Option(None, help="Initial latents .npy (float32 [1,4,h,w])."),
    out: Path = typer.Option(Path("image.png"), help="Where to write the PNG."),
    timings: Path = typer.Option(None, help="Write the timing record here as JSON."),
) -> None:
    """Generate one image and write it as a PNG (prompt, seed, steps, guidance in its metadata)."""
    from sfmobile.pipeline import Pipeline

    latents = read_init_latents(init_latents) if init_latents else None
    if steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    for name, value in (("--height", height), ("--width", width)):
        if value < 8 or value % 8:
            raise InputError(f"{name} must be a positive multiple of 8, got {value}")
    pipeline = Pipeline(open_backend(model, backend, preset), cfg_batch=cfg_batch)
    console = Console(stderr=True)
    with Progress(
        TextColumn("denoising"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("steps", total=steps)
        result = pipeline.generate(
            prompt,
            negative_prompt=negative_prompt,
            steps=steps,
            guidance_scale=guidance,
            seed=seed,
            height=height,
            width=width,
            init_latents=latents,
            on_step=lambda done, total: progress.update(task, completed=done),
        )
    metadata = PngInfo()
    for key, value in (
        ("prompt", prompt),
        ("negative_prompt", negative_prompt),
        ("seed", seed),
        ("steps", steps),
        ("guidance", guidance),
        ("backend", backend),
    ):
        metadata.add_text(key, str(value))
    out.parent.mkdir(parents=True, exist_ok=True)
    result.image.save(out, pnginfo=metadata)
    if timings:
        timings.write_text(json.dumps(result.timings.to_dict(), indent=2) + "\n")
    console.print(f"wrote {out} ({result.timings.total:.2f} s)")
