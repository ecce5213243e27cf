"""`sfmobile generate`: one image from a checkpoint or an exported bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sfmobile.backends.factory import BACKENDS, default_backend, open_backend
from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.cli.image_output import IMAGE_HELP, check_image_out, save_image
from sfmobile.errors import InputError
from sfmobile.output_paths import check_output_file, write_atomically
from sfmobile.pipeline import DEFAULT_STRENGTH, Pipeline, img2img_start
from sfmobile.safe_npy import read_npy
from sfmobile.shipped import DEMO_IMAGE_SIZE


def read_init_image(path: Path, height: int, width: int) -> np.ndarray:
    """--init-image: any picture PIL reads, resized to height x width or refused
    (init_image.py says when)."""
    from PIL import Image, UnidentifiedImageError

    from sfmobile.init_image import image_array

    try:
        with Image.open(path) as image:
            return image_array(image, height, width, name=f"--init-image {path}")
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"--init-image {path}: not a readable image ({error})") from error


def read_init_latents(path: Path) -> np.ndarray:
    return read_npy(path, "--init-latents")


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
    backend: str = typer.Option(
        None,
        help="Runtime: " + " | ".join(BACKENDS) + " (default: a bundle's own format, else torch)",
        show_default=False,
    ),
    preset: str = typer.Option(None, help="Architecture of a single-file checkpoint."),
    soc: str = typer.Option(
        None, help="--backend qnn: the Snapdragon SoC to run on (default: the bundle's)."
    ),
    cfg_batch: int = typer.Option(
        None,
        help="UNet batch for guidance: 2 (one call) or 1 (two) (default: the bundle's own, "
        "else 2).",
        show_default=False,
    ),
    init_latents: Path = typer.Option(None, help="Initial latents .npy (float32 [1,4,h,w])."),
    init_image: Path = typer.Option(
        None,
        help="Image-to-image: start from this picture (resized to the generation's size when "
        "its aspect ratio matches, else refused; a bundle needs export --with-encoder).",
    ),
    strength: float = typer.Option(
        None,
        help=f"With --init-image: how much of the schedule runs, in (0, 1] (default "
        f"{DEFAULT_STRENGTH}); 1 keeps little of the picture.",
        show_default=False,
    ),
    lora: list[str] = typer.Option(
        None,
        help="torch backend: merge a LoRA file (kohya or diffusers), FILE.safetensors[:SCALE]; "
        "repeatable. Bundles get theirs at export.",
    ),
    lora_partial: bool = typer.Option(
        False, help="Merge the LoRA modules this model has and warn about the rest."
    ),
    tile_decoder: bool = typer.Option(
        None,
        "--tile-decoder/--no-tile-decoder",
        help="Decode in overlapping tiles (lower peak memory, an approximation: docs/memory.md) "
        "(default: when the bundle was exported with --decoder-tile).",
        show_default=False,
    ),
    out: Path = typer.Option(Path("image.png"), help=IMAGE_HELP),
    timings: Path = typer.Option(None, help="Write the timing record here as JSON."),
) -> None:
    """Generate one image and write it as PNG or JPEG (prompt, seed, steps, guidance in it)."""
    check_image_out(out)
    if timings:
        check_output_file(timings, "--timings")
    latents = read_init_latents(init_latents) if init_latents else None
    if init_image is None and strength is not None:
        raise InputError("--strength applies to image-to-image only: pass --init-image")
    if init_image is not None and init_latents is not None:
        raise InputError("--init-image and --init-latents: pass one, not both")
    backend = backend or default_backend(model)
    if lora and backend != "torch":
        raise InputError(
            f"--lora: the {backend} backend runs a bundle, whose LoRAs are merged at export "
            "(sfmobile export --lora); only the torch backend merges one here"
        )
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be >= 1, got {steps}")
    for name, value in (("--height", height), ("--width", width)):
        if value is not None and (value < 8 or value % 8):
            raise InputError(f"{name} must be a positive multiple of 8, got {value}")
    # One image: each bundle component is loaded when needed and released before the next, so
    # the peak is the largest component's, not the sum (backends/residency.py).
    opened = open_backend(model, backend, preset, soc=soc, resident=False)
    if lora:
        from sfmobile.weights.lora import LoraFile, merge_loras

        merge_loras(opened.model, [LoraFile.parse(text) for text in lora], lora_partial)
    pipeline = Pipeline(opened, cfg_batch=cfg_batch, tile_decoder=tile_decoder)
    steps = pipeline.info.scheduler.default_steps if steps is None else steps
    guidance = pipeline.info.scheduler.default_guidance if guidance is None else guidance
    default_height, default_width = default_size(model, pipeline.info.image_size)
    height = default_height if height is None else height
    width = default_width if width is None else width
    strength = DEFAULT_STRENGTH if strength is None else strength
    image = read_init_image(init_image, height, width) if init_image else None
    total_steps = steps - img2img_start(steps, strength) if image is not None else steps
    outside = pipeline.guidance_warning(guidance)
    if outside:
        typer.echo(f"warning: {outside}", err=True)
    console = Console(stderr=True)
    with Progress(
        TextColumn("denoising"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("steps", total=total_steps)
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
            init_image=image,
            strength=strength,
        )
    settings = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "seed": seed,
        "steps": steps,
        "guidance": guidance,
        "backend": backend,
    }
    if init_image:
        settings |= {"init_image": init_image.name, "strength": strength}
    if lora:
        settings["lora"] = ", ".join(lora)
    save_image(result.image, out, settings)
    if timings:
        record = json.dumps(result.timings.to_dict(), indent=2) + "\n"
        write_atomically(timings, record.encode())
    console.print(f"wrote {out} ({result.timings.total:.2f} s)")
