"""`sfmobile random-model`: an sfmobile checkpoint of a preset with random weights (for trying the
pipeline and timing an architecture before any real weights exist)."""

from __future__ import annotations

from pathlib import Path

import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.output_paths import check_output_folder
from sfmobile.presets import PRESET_NAMES


@app.command("random-model")
@user_errors_exit_2
def random_model(
    preset: str = typer.Option(..., help="One of: " + ", ".join(PRESET_NAMES)),
    out: Path = typer.Option(
        ..., help="Checkpoint folder: new, empty, or an earlier checkpoint (replaced)."
    ),
    seed: int = typer.Option(0, help="Seed of the random initialisation."),
) -> None:
    """Write a randomly initialised model of PRESET as an sfmobile checkpoint."""
    import torch

    from sfmobile.models.random_init import random_model as build
    from sfmobile.weights.sfmobile_checkpoint import FORMAT as CHECKPOINT_FORMAT
    from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

    check_output_folder(out, CHECKPOINT_FORMAT)
    torch.manual_seed(seed)
    save_checkpoint(build(preset, seed), out)
    typer.echo(f"wrote {out}")
