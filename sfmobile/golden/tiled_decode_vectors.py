"""Tiled-decoding golden vectors: sfmobile/tiled_decode.py's tile placement, its choice of tile
side, and whole blended images, for the Kotlin core's TiledDecode.kt to reproduce.

The blended cases decode with a stand-in tile decoder, a fixed float32 function of the tile's
latent and of the pixel's position inside the tile, so another language computes the same tiles:

  tile_image[0, c, y, x] = latent[0, c % C, y // f, x // f] * 0.5f + 0.01f * y + 0.02f * x
                           + 0.1f * c        (y, x inside the tile; float32, left to right)

Its dependence on the position inside the tile makes overlapping tiles disagree, so the blend
(not only the placement) decides every pixel of an overlap. The latents are gaussian_noise(SEED).
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from sfmobile.backends.base import ModelInfo
from sfmobile.errors import InputError
from sfmobile.noise import gaussian_noise
from sfmobile.scheduler import SchedulerConfig
from sfmobile.tiled_decode import decode_tiled, default_overlap, tile_side, tile_starts

GOLDEN_FORMAT = "sfmobile-tiled-decode-golden/1"
STAND_IN = "latent[c % C, y // f, x // f] * 0.5f + 0.01f * y + 0.02f * x + 0.1f * c"
SEED = 11
CHANNELS = 4
# (name, latent height, latent width, tile side, factor): the demo bundle with a 32-pixel tile
# decoder, a non-square latent, ties in the placement's rounding (9: starts 0, 2.5 -> 2, 5), a
# tile as tall as the latent, a tile too small for any feather (overlap 0), SD's 512x512 in
# 320-pixel tiles (at factor 1 to keep the file small).
BLENDED = (
    ("demo-8x8-tile4-f8", 8, 8, 4, 8),
    ("wide-12x20-tile8-f4", 12, 20, 8, 4),
    ("rounding-ties-9x10-tile4-f2", 9, 10, 4, 2),
    ("full-height-6x16-tile6-f2", 6, 16, 6, 2),
    ("no-feather-7x7-tile3-f2", 7, 7, 3, 2),
    ("sd15-64x64-tile40-f1", 64, 64, 40, 1),
)
# tile_starts over (size, tile, overlap): every tile of a few sizes at no, the default and the
# largest overlap, including sizes whose spacing ties at .5 (Python rounds half to even).
START_SIZES = (1, 8, 9, 13, 17, 33, 64, 96)
# tile_side over (bundle's tile side or None, latent height, width, request True/False/None).
TILE_SIDE = tuple(
    (tile, h, w, request)
    for tile, h, w in ((None, 64, 64), (40, 64, 64), (64, 64, 64), (8, 8, 8), (4, 8, 8),
                       (40, 64, 96), (40, 96, 64))
    for request in (True, False, None)
)  # fmt: skip


def stand_in_decoder(factor: int):
    """The tile decoder of the module docstring at `factor` pixels per latent pixel."""

    def decode(latents: np.ndarray) -> np.ndarray:
        _, channels, tile, _ = latents.shape
        side = tile * factor
        up = latents[0].repeat(factor, axis=1).repeat(factor, axis=2)  # [C, side, side]
        ys = np.arange(side, dtype=np.float32)[:, None]
        xs = np.arange(side, dtype=np.float32)[None, :]
        planes = [
            up[c % channels] * np.float32(0.5) + np.float32(0.01) * ys
            + np.float32(0.02) * xs + np.float32(0.1) * np.float32(c)
            for c in range(3)
        ]  # fmt: skip
        return np.stack(planes)[None].astype(np.float32)

    return decode


def side_case(tile: int | None, height: int, width: int, request: bool | None) -> dict:
    """tile_side for a fixed-size bundle (image_size set, as every bundle has)."""
    info = ModelInfo(
        scheduler=SchedulerConfig(), scaling_factor=0.18215, latent_channels=CHANNELS,
        vae_downscale=8, text_width=768, tokenizer_dir=None,
        image_size=(8 * height, 8 * width), decoder_tile=tile,
    )  # fmt: skip
    try:
        result: int | str | None = tile_side(info, (height, width), request)
    except InputError:
        result = "refused"
    return {"decoder_tile": tile, "latent": [height, width], "request": request, "tile": result}


def write_tiled_decode_vectors(out_dir: Path) -> dict:
    """Write out_dir/index.json (tile sides, blended cases), one .f32 per blended case, and
    tile_starts.json (one placement a line)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    starts = [
        {"size": size, "tile": tile, "overlap": overlap, "starts": tile_starts(size, tile, overlap)}
        for size in START_SIZES
        for tile in range(1, size + 1)
        for overlap in sorted({0, default_overlap(tile), tile // 2})
    ]
    blended = []
    for name, height, width, tile, factor in BLENDED:
        latents = gaussian_noise(SEED, (1, CHANNELS, height, width))
        overlap = default_overlap(tile)
        image = decode_tiled(latents, stand_in_decoder(factor), tile, overlap, factor)
        data = image.astype("<f4").tobytes()
        (out_dir / f"{name}.f32").write_bytes(data)
        blended.append(
            {
                "name": name,
                "latent_shape": [1, CHANNELS, height, width],
                "tile": tile,
                "overlap": overlap,
                "factor": factor,
                "row_starts": tile_starts(height, tile, overlap),
                "col_starts": tile_starts(width, tile, overlap),
                "file": f"{name}.f32",
                "file_shape": list(image.shape),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    index = {
        "format": GOLDEN_FORMAT,
        "source": "sfmobile/tiled_decode.py",
        "stand_in_decoder": STAND_IN,
        "latents": {"noise_seed": SEED},
        "file_layout": "the blended image [1, 3, f h, f w], little-endian float32, C order",
        "tile_starts": "tile_starts.json",
        "tile_side": [side_case(*case) for case in TILE_SIDE],
        "blended": blended,
    }
    lines = ",\n".join(" " + json.dumps(case) for case in starts)
    (out_dir / "tile_starts.json").write_text("[\n" + lines + "\n]\n")
    (out_dir / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index
