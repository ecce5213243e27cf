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
from sfmobile.shipped import DEMO_IMAGE_SIZE


def read_init_latents(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InputError(f"--init-latents {path}: not a readable .npy file ({error})") from error
    return array


SIZE_HELP = (
    "Image {} in pixels, a multiple of 8 (default: a bundle's size, 64 for the shipped demo "
    "model, else 512)."
)


def default_size(model: Path | None, bundle_size: tuple[int, int] | None) -> tuple[int, int]:
    """A bundle runs at the size it was exported for; the shipped demo model at the size it was
    trained at; any other checkpoint at SD-1.x's 512."""
    if bundle_size:
        return bundle_size
    if model is None:
        return DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE
    return 512, 512


@app.command()
@user_errors_exit_2
def generate(
    model: Path = typer.Option(
        None,
        help="diffusers folder, sfmobile checkpoint, CompVis file, or exported bundle "
        "(default: the demo model shipped with sfmobile, torch backend)",
    ),
    prompt: str = typer.Option(..., help="What to draw."),
    negative_prompt: str = typer.Option("", help="What to steer away from."),
    steps: int = typer.Option(
        None, help="Denoising steps (default: the model's).", show_default=False
    ),
    guidance: float = typer.Option(
        None,
        help="Classifier-free guidance scale, <= 1: off (default: the model's).",
        show_default=False,
    ),
    seed: int = typer.Option(0, help="Seed of the portable initial noise (docs/noise.md)."),
    height: int = typer.Option(None, help=SIZE_HELP.format("height"), show_default=False),
    width: int = typer.Option(None, help=SIZE_HELP.format("width"), show_default=False),
    backend: str = typer.Option("torch", help="Runtime: " + " | ".join(BACKENDS)),
    preset: str = typer.Option(None, help="Architecture of a single-file checkpoint."),
    soc: str = typer.Option(
        None, help="--backend qnn: the Snapdragon SoC to run on (default: the bundle's)."
    ),
    cfg_batch: int = typer.Option(2, help="UNet batch for guidance: 2 (one call) or 1 (two)."),
    init_latents: Path = typer.Option(None, help="Initial latents .npy (float32 [1,4,h,w])."),
    out: Path = typer.Option(Path("image.png"), help="Where to write the PNG."),
    timings: Path = typer.Option(None, help="Write the timing record here as JSON."),
) -> None:
    """Generate one image and write it as a PNG (prompt, seed, steps, guidance in its metadata)."""
    from sfmobile.pipeline import Pipeline

    latents = read_init_latents(init_latents) if init_latents else None
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    for name, value in (("--height", height), ("--width", width)):
        if value is not None and (value < 8 or value % 8):
            raise InputError(f"{name} must be a positive multiple of 8, got {value}")
    pipeline = Pipeline(open_backend(model, backend, preset, soc=soc), cfg_batch=cfg_batch)
    steps = pipeline.info.scheduler.default_steps if steps is None else steps
    guidance = pipeline.info.scheduler.default_guidance if guidance is None else guidance
    default_height, default_width = default_size(model, pipeline.info.image_size)
    height = default_height if height is None else height
    width = default_width if width is None else width
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
