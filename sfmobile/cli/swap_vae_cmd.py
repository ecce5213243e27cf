"""`sfmobile swap-vae`: a trained model with a fine-tuned decoder (same encoder, same latents)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from sfmobile.cli.app import app, user_errors_exit_2


@app.command("swap-vae")
@user_errors_exit_2
def swap_vae(
    model: Path = typer.Option(..., help="The model (e.g. runs/teacher/teacher)."),
    vae: Path = typer.Option(
        ..., help="VAE with the model's encoder, from `train vae --init RUN --freeze-encoder`."
    ),
    out: Path = typer.Option(..., help="Checkpoint folder to write (replaced)."),
) -> None:
    """Write MODEL with VAE's decoder; refused unless VAE's encoder is MODEL's own."""
    from sfmobile.errors import InputError
    from sfmobile.output_paths import check_output_folder
    from sfmobile.train.assembly.vae_swap import swap_vae_files
    from sfmobile.weights.sfmobile_checkpoint import FORMAT as CHECKPOINT_FORMAT

    for name, path in (("--model", model), ("--vae", vae)):
        if not path.exists():
            raise InputError(f"{name} {path}: no such file or folder")
    check_output_folder(out, CHECKPOINT_FORMAT, sources=[("--model", model), ("--vae", vae)])
    swap_vae_files(model, vae, out)
    Console(stderr=True).print(f"wrote {out}")
