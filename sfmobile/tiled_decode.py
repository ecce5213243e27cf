"""Tiled decoding: the latent decoded as overlapping square tiles blended into one image, so the
decoder's activations (its peak memory at 512x512: several 128-channel full-size tensors) are a
tile's, not the whole image's.

Tiles of side t (latent pixels) are spread evenly over each axis, overlapping their neighbours
by at least `overlap`; the first and last touch the borders. Each tile's image is weighted by a
linear feather (ramping from 0 to 1 over `overlap` latent pixels from each edge inside the
image) and the weights are normalised to sum to 1 at every pixel, so where two tiles overlap
one fades out as the other fades in and no seam shows where a tile's decode ends.

The result is close to, not equal to, the untiled decode: a tile's pixels near its own border
see less context than in the whole image, and its GroupNorm statistics and mid-block attention
cover the tile, not the whole latent. tests/test_tiled_decode.py bounds the difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from sfmobile.backends.base import ModelInfo
from sfmobile.errors import InputError

# A backend that decodes any size (torch) tiles at 32 latent pixels (256 px at SD's factor 8):
# a quarter of a 512x512 decode's activations. A bundle tiles at its tile decoder's size.
DEFAULT_TILE = 32


def tile_side(info: ModelInfo, latent_size: tuple[int, int], request: bool | None) -> int | None:
    """The latent side to decode tiles at, or None to decode whole. request: True tiles (a
    bundle needs a tile decoder), False never, None (auto) tiles when the bundle has a tile
    decoder smaller than the latent."""
    if request is False:
        return None
    tile = info.decoder_tile
    if tile is None and info.image_size is None:
        tile = DEFAULT_TILE if request else None
    if tile is None:
        if request:
            raise InputError(
                "--tile-decoder: this bundle has no tile decoder; export it again with "
                "--decoder-tile PIXELS (e.g. 320 for 512x512)"
            )
        return None
    if request is None and tile >= max(latent_size):
        return None
    return min(tile, *latent_size) if info.decoder_tile is None else tile


def default_overlap(tile: int) -> int:
    """A quarter of the tile (8 latent pixels = 64 px for a 32 tile): see
    tests/test_tiled_decode.py for what it costs against the whole decode."""
    return tile // 4


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` covering [0, size): as few as keep neighbours
    overlapping by at least `overlap` (at most half a tile), evenly spread, the first at 0 and
    the last at size - tile."""
    if not 0 < tile <= size:
        raise InputError(f"tile side {tile} must be in 1..{size} (the latent's side)")
    if not 0 <= overlap <= tile // 2:
        raise InputError(f"tile overlap {overlap} must be in 0..{tile // 2} (half the tile)")
    if tile == size:
        return [0]
    count = max(2, math.ceil((size - overlap) / (tile - overlap)))
    return [round(index * (size - tile) / (count - 1)) for index in range(count)]


def axis_weights(starts: list[int], tile: int, size: int, ramp: int) -> list[np.ndarray]:
    """Per tile, its weight at each of its `tile` positions along one axis: a linear ramp over
    `ramp` positions at each edge inside the image (1 elsewhere), divided by the sum of every
    tile's weight there, so the weights sum to 1 at every position."""
    raw = []
    rising = (np.arange(ramp, dtype=np.float32) + 0.5) / max(ramp, 1)
    for start in starts:
        weight = np.ones(tile, np.float32)
        if start > 0 and ramp:
            weight[:ramp] = rising
        if start + tile < size and ramp:
            weight[-ramp:] = np.minimum(weight[-ramp:], rising[::-1])
        raw.append(weight)
    total = np.zeros(size, np.float32)
    for start, weight in zip(starts, raw, strict=True):
        total[start : start + tile] += weight
    return [w / total[s : s + tile] for s, w in zip(starts, raw, strict=True)]


def decode_tiled(
    latents: np.ndarray,
    decode_tile: Callable[[np.ndarray], np.ndarray],
    tile: int,
    overlap: int,
    factor: int,
) -> np.ndarray:
    """latents [1, c, h, w] -> image [1, 3, factor h, factor w], each [1, c, tile, tile] piece
    decoded by `decode_tile` (-> [1, 3, factor tile, factor tile]) and feathered, pixel by
    pixel, into its neighbours."""
    _, _, height, width = latents.shape
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    side = tile * factor
    ramp = overlap * factor
    row_weights = axis_weights([y * factor for y in rows], side, height * factor, ramp)
    col_weights = axis_weights([x * factor for x in cols], side, width * factor, ramp)
    image = np.zeros((1, 3, height * factor, width * factor), np.float32)
    for y, wy in zip(rows, row_weights, strict=True):
        for x, wx in zip(cols, col_weights, strict=True):
            part = decode_tile(np.ascontiguousarray(latents[:, :, y : y + tile, x : x + tile]))
            if part.shape != (1, 3, side, side):
                raise InputError(
                    f"tile decoder gave {list(part.shape)} for a {tile}x{tile} latent tile, "
                    f"expected [1, 3, {side}, {side}]"
                )
            top, left = y * factor, x * factor
            image[:, :, top : top + side, left : left + side] += part * np.outer(wy, wx)
    return image
