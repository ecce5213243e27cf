"""`sfmobile convert --to diffusers`: a checkpoint written as a diffusers Stable Diffusion folder
(weights/diffusers_export.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from sfmobile.cli.app import app, user_errors_exit_2

TARGETS = ("diffusers",)
DIFFUSERS_KIND = "diffusers-folder"  # no marker: only a new or empty --out is written


@app.command("convert")
@user_errors_exit_2
def convert(
    to: str = typer.Option(..., "--to", help="Target format: diffusers."),
    model: Path = typer.Option(
        ..., help="sfmobile checkpoint, diffusers folder or CompVis file to convert."
    ),
    out: Path = typer.Option(..., help="Folder to write: new or empty."),
    preset: str = typer.Option(None, help="Architecture of a single-file checkpoint."),
) -> None:
    """Write MODEL as a folder diffusers' StableDiffusionPipeline.from_pretrained loads. Only
    stock SD-1.x layouts convert (presets sd15 and tiny, and diffusers or CompVis SD-1.x
    checkpoints); the efficient `snapfusion` UNet, the demo model's UNet and compressed decoders
    are refused with the reason (take those to phones with `sfmobile export`)."""
    from sfmobile.errors import InputError
    from sfmobile.output_paths import check_output_folder
    from sfmobile.weights import load_model
    from sfmobile.weights.diffusers_export import save_diffusers_folder

    if to not in TARGETS:
        raise InputError(f"--to {to}: expected one of {', '.join(TARGETS)}")
    check_output_folder(out, DIFFUSERS_KIND, sources=[("--model", model)])
    save_diffusers_folder(load_model(model, preset), out)
    typer.echo(f"wrote {out}")
