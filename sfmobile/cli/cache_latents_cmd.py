"""`sfmobile cache-latents`: a dataset's VAE latents and text embeddings, computed once."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from sfmobile.cli.app import app, user_errors_exit_2


@app.command("cache-latents")
@user_errors_exit_2
def cache_latents(
    data: str = typer.Option(
        ...,
        help="A folder of images with same-named .txt captions, a .jsonl or .csv index "
        "(image + caption columns), or WebDataset shards (a .tar, shards-{000..009}.tar, or a "
        "folder of .tar files).",
    ),
    out: Path = typer.Option(..., help="Cache folder to write (replaced when complete)."),
    model: Path = typer.Option(
        None,
        help="diffusers folder, sfmobile checkpoint or CompVis file whose VAE and text encoder "
        "encode (default: the demo model shipped with sfmobile).",
    ),
    preset: str = typer.Option(None, help="Architecture of a single-file checkpoint."),
    data_format: str = typer.Option("auto", help="auto | folder | jsonl | csv | webdataset"),
    image_size: int = typer.Option(
        None,
        help="Images are resized and centre-cropped to this square, a multiple of 8 "
        "(default: 64 for the shipped demo model, else 512).",
        show_default=False,
    ),
    batch_size: int = typer.Option(8, help="Images per encoder call."),
    shard_size: int = typer.Option(1024, help="Samples per safetensors file."),
    dtype: str = typer.Option("float32", help="Stored dtype: float32 | float16 | bfloat16."),
    device: str = typer.Option("cpu", help="Where the encoders run: cpu, cuda, cuda:1, ..."),
) -> None:
    """Encode every image with the model's VAE (latent mean x scaling_factor) and every caption
    with its text encoder, into OUT/latents-NNNNN.safetensors + OUT/index.json."""
    from sfmobile.errors import InputError
    from sfmobile.shipped import DEMO_IMAGE_SIZE
    from sfmobile.train.data.latent_cache import CacheConfig, write_latent_cache
    from sfmobile.train.data.source import DataSpec, open_image_captions
    from sfmobile.weights import load_model

    size = image_size or (DEMO_IMAGE_SIZE if model is None else 512)
    if size % 8:
        raise InputError(f"--image-size must be a multiple of 8, got {size}")
    config = CacheConfig(batch_size, shard_size, dtype, device)
    reader = open_image_captions(DataSpec(data, data_format), size)
    sd = load_model(model, preset)
    index = write_latent_cache(sd, reader, out, config, reader.report)
    console = Console(stderr=True)
    console.print(reader.report.summary())
    console.print(f"wrote {index['count']} samples in {len(index['shards'])} shards to {out}")
