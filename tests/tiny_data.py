"""A tiny image-caption folder for the training-stage tests: random-pixel PNG and JPEG files
with a same-named .txt caption beside each (the usual fine-tuning layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CAPTIONS = ["a red square", "a green disc", "a blue stripe", "two yellow dots", "grey", "a tree"]


def write_photos(
    folder: Path, shapes: list[tuple[int, int]] | None = None, captions: list[str] = CAPTIONS
) -> Path:
    """img0.jpg, img1.png, ... (alternating) of `shapes` ((height, width), default all 40x48)
    with captions[i] in img{i}.txt; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = shapes or [(40, 48)] * len(captions)
    rng = np.random.default_rng(0)
    for i, (caption, (height, width)) in enumerate(zip(captions, shapes, strict=True)):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        suffix = ".png" if i % 2 else ".jpg"
        Image.fromarray(pixels).save(folder / f"img{i}{suffix}")
        (folder / f"img{i}.txt").write_text(caption)
    return folder
