"""`sfmobile noise`: the portable seeded initial latents as a .npy file (docs/noise.md)."""

import io
import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError
from sfmobile.noise import gaussian_noise
from sfmobile.output_paths import check_output_file, write_atomically

# Noise is initial latents: even SDXL's are 0.5 MB; anything near this is a typo.
MAX_NOISE_BYTES = 2**30


def parse_shape(text: str) -> tuple[int, ...]:
    """'1,4,64,64' -> (1, 4, 64, 64); every dimension a positive integer."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(
        part.isascii() and part.isdigit() and int(part) > 0 for part in parts
    ):
        raise InputError(
            f"--shape must be comma-separated positive integers like 1,4,64,64, got {text!r}"
        )
    dims = tuple(int(part) for part in parts)
    if math.prod(dims) * 4 > MAX_NOISE_BYTES:
        raise InputError(
            f"--shape {text}: {math.prod(dims) * 4 / 2**30:.3g} GiB of float32 noise exceeds "
            f"the {MAX_NOISE_BYTES // 2**30} GiB limit"
        )
    return dims


@app.command()
@user_errors_exit_2
def noise(
    seed: Annotated[int, typer.Option(help="uint64 seed, 0 <= seed < 2^64.")],
    out: Annotated[Path, typer.Option(help="Output .npy file (float32).")],
    shape: Annotated[str, typer.Option(help="Comma-separated dimensions.")] = "1,4,64,64",
) -> None:
    """Write the portable Gaussian noise for SEED and SHAPE (docs/noise.md) as a .npy file."""
    dims = parse_shape(shape)
    check_output_file(out, "--out", (".npy",))
    array = io.BytesIO()
    np.save(array, gaussian_noise(seed, dims))
    write_atomically(out, array.getvalue())
    typer.echo(f"wrote {out} ({'x'.join(map(str, dims))} float32, seed {seed})")
