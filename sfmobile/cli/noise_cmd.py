"""`sfmobile noise`: the portable seeded initial latents as a .npy file (docs/noise.md)."""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError
from sfmobile.noise import gaussian_noise


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,4,64,64' -> (1, 4, 64, 64); every dimension a positive integer."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(
        part.isascii() and part.isdigit() and int(part) > 0 for part in parts
    ):
        raise InputError(
            f"--shape must be comma-separated positive integers like 1,4,64,64, got {text!r}"
        )
    return tuple(int(part) for part in parts)


@app.command()
@user_errors_exit_2
def noise(
    seed: Annotated[int, typer.Option(help="uint64 seed, 0 <= seed < 2^64.")],
    out: Annotated[Path, typer.Option(help="Output .npy file (float32).")],
    shape: Annotated[str, typer.Option(help="Comma-separated dimensions.")] = "1,4,64,64",
) -> None:
    """Write the portable Gaussian noise for SEED and SHAPE (docs/noise.md) as a .npy file."""
    dims = parse_shape(shape)
    if out.suffix != ".npy":
        raise InputError(f"--out must end in .npy, got {out}")
    if not out.parent.is_dir():
        raise InputError(f"--out directory does not exist: {out.parent}")
    np.save(out, gaussian_noise(seed, dims))
    typer.echo(f"wrote {out} ({'x'.join(map(str, dims))} float32, seed {seed})")
