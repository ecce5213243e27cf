"""Portable seeded Gaussian noise: the initial latents, reproducible bit for bit in Kotlin.

torch.randn and numpy's generators are not specified closely enough to re-implement on a phone,
so the same seed would give different images in Python and on Android. This module fixes the
whole path instead: Philox4x32-10 (Salmon et al. 2011) gives uint32 words, Box-Muller in float64
turns them into normals, one rounding to float32 at the end. docs/noise.md is the spec that
the Kotlin core's Noise.kt (android_app/core/) follows; tests/golden/noise/ holds the vectors
that hold both to it, bit for bit.
"""

import math

import numpy as np

from sfmobile.errors import InputError

# Philox4x32 round multipliers and Weyl key increments (Random123's PHILOX_M4x32_*, PHILOX_W32_*).
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
PHILOX_ROUNDS = 10

_MASK32 = 0xFFFFFFFF
_TWO_POW_MINUS_32 = 2.0**-32  # u = (w + 0.5) * 2^-32, exact in float64
_TWO_PI = 2.0 * math.pi  # the double 6.283185307179586 (2 * fl(pi), exact doubling)


def philox4x32_10(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 on each row of `counters` (N x 4 uint32) with `key` (two uint32).

    Returns N x 4 uint32 words. The 32x32->64 multiplies run in uint64, so nothing overflows.
    """
    counters = np.asarray(counters)
    if counters.dtype != np.uint32 or counters.ndim != 2 or counters.shape[1] != 4:
        raise InputError(
            f"counters must be an N x 4 uint32 array, got {counters.dtype} {counters.shape}"
        )
    if len(key) != 2 or any(not 0 <= int(k) <= _MASK32 for k in key):
        raise InputError(f"key must be two uint32 values, got {key!r}")

    x0, x1, x2, x3 = (counters[:, i].astype(np.uint64) for i in range(4))
    k0, k1 = int(key[0]), int(key[1])
    mask = np.uint64(_MASK32)
    shift = np.uint64(32)
    for round_index in range(PHILOX_ROUNDS):
        if round_index > 0:  # the key is bumped between rounds, 9 times in all
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        product0 = x0 * np.uint64(PHILOX_M0)
        product1 = x2 * np.uint64(PHILOX_M1)
        hi0, lo0 = product0 >> shift, product0 & mask
        hi1, lo1 = product1 >> shift, product1 & mask
        x0, x1, x2, x3 = hi1 ^ x1 ^ np.uint64(k0), lo1, hi0 ^ x3 ^ np.uint64(k1), lo0
    return np.stack([x0, x1, x2, x3], axis=1).astype(np.uint32)


def seed_to_key(seed: int) -> tuple[int, int]:
    """The Philox key for a uint64 seed: (low 32 bits, high 32 bits)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(f"seed must be an integer in [0, 2^64), got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise InputError(f"seed must be in [0, 2^64), got {seed}")
    return seed & _MASK32, seed >> 32


def block_counters(n_blocks: int) -> np.ndarray:
    """Counters for blocks 0..n_blocks-1: row j is (j low 32, j high 32, 0, 0)."""
    j = np.arange(n_blocks, dtype=np.uint64)
    counters = np.zeros((n_blocks, 4), dtype=np.uint32)
    counters[:, 0] = (j & np.uint64(_MASK32)).astype(np.uint32)
    counters[:, 1] = (j >> np.uint64(32)).astype(np.uint32)
    return counters


def words_to_normals(words: np.ndarray) -> np.ndarray:
    """Box-Muller on N x 4 uint32 words -> N x 4 float64 normals (z0, z1, z2, z3 per block).

    (w0, w1) give z0 = r cos(2 pi u1), z1 = r sin(2 pi u1) with r = sqrt(-2 ln u0); (w2, w3)
    give z2, z3 the same way. u = (w + 0.5) * 2^-32 lies in (0, 1), so ln u is finite.
    """
    u = (words.astype(np.float64) + 0.5) * _TWO_POW_MINUS_32
    normals = np.empty(u.shape, dtype=np.float64)
    for first in (0, 2):
        radius = np.sqrt(-2.0 * np.log(u[:, first]))
        angle = _TWO_PI * u[:, first + 1]
        normals[:, first] = radius * np.cos(angle)
        normals[:, first + 1] = radius * np.sin(angle)
    return normals


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Every dimension a positive int: an empty tensor has no latents to seed."""
    dims = tuple(shape) if isinstance(shape, tuple | list) else ()
    if not dims or any(
        isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1 for d in dims
    ):
        raise InputError(f"shape must be one or more positive integers, got {shape!r}")
    return tuple(int(d) for d in dims)


def gaussian_noise(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise of `shape` for `seed`, as specified in docs/noise.md.

    Value k of the flat (C order) tensor is z_{k mod 4} of Philox block k div 4, so a smaller
    tensor's values are a prefix of a larger one's for the same seed.
    """
    key = seed_to_key(seed)
    dims = _check_shape(shape)
    count = math.prod(dims)
    n_blocks = (count + 3) // 4
    normals = words_to_normals(philox4x32_10(block_counters(n_blocks), key))
    return normals.reshape(-1)[:count].astype(np.float32).reshape(dims)
