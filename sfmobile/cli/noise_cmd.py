"""`sfmobile noise` and `sfmobile noise-golden`: seeded latents, and the vectors Kotlin tests read.

The golden folder (tests/golden/noise/) is written by `noise-golden` and checked by
tests/test_noise.py, which regenerates it and compares byte for byte, so it cannot drift.
"""

import hashlib
import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError
from sfmobile.noise import block_counters, gaussian_noise, philox4x32_10, seed_to_key

GOLDEN_FORMAT = "sfmobile-noise-golden/1"

# (seed, shape): a tiny case to debug by eye, the SD-1.x 512px latent, and the largest seed with
# an element count that is not a multiple of 4 (a partly used last block).
GOLDEN_CASES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (0, (1, 4, 8, 8)),
    (42, (1, 4, 64, 64)),
    (2**64 - 1, (2, 3, 5)),
)


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


def golden_file_name(seed: int, shape: tuple[int, ...]) -> str:
    return f"seed{seed}_{'x'.join(str(d) for d in shape)}.f32"


def write_golden(out_dir: Path) -> dict:
    """Write each golden case as raw little-endian float32 plus index.json; return the index."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = []
    for seed, shape in GOLDEN_CASES:
        data = gaussian_noise(seed, shape).astype("<f4").tobytes()
        name = golden_file_name(seed, shape)
        (out_dir / name).write_bytes(data)
        block0 = philox4x32_10(block_counters(1), seed_to_key(seed))[0]
        cases.append(
            {
                "seed": str(seed),  # a string: 2^64-1 does not fit a signed 64-bit JSON reader
                "shape": list(shape),
                "file": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "block0_words": [f"{int(word):08x}" for word in block0],
            }
        )
    index = {
        "format": GOLDEN_FORMAT,
        "spec": "docs/noise.md",
        "dtype": "float32",
        "byte_order": "little",
        "cases": cases,
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


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


@app.command("noise-golden")
@user_errors_exit_2
def noise_golden(
    out: Annotated[Path, typer.Option(help="Folder for the .f32 files and index.json.")],
) -> None:
    """Write the noise golden vectors (raw float32 + index.json) that the Kotlin tests read."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out is a file, not a folder: {out}")
    index = write_golden(out)
    typer.echo(f"wrote {len(index['cases'])} cases and index.json to {out}")
