"""Noise golden vectors: raw little-endian float32 files + index.json (docs/noise.md)."""

import hashlib
import json
from pathlib import Path

from sfmobile.noise import block_counters, gaussian_noise, philox4x32_10, seed_to_key

GOLDEN_FORMAT = "sfmobile-noise-golden/1"

# (seed, shape): a tiny case to debug by eye, the SD-1.x 512px latent, and the largest seed with
# an element count that is not a multiple of 4 (a partly used last block).
GOLDEN_CASES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (0, (1, 4, 8, 8)),
    (42, (1, 4, 64, 64)),
    (2**64 - 1, (2, 3, 5)),
)


def golden_file_name(seed: int, shape: tuple[int, ...]) -> str:
    return f"seed{seed}_{'x'.join(str(d) for d in shape)}.f32"


def write_noise_vectors(out_dir: Path) -> dict:
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
