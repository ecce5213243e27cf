"""Decode one training image: any file PIL reads -> RGB, shorter side resized to `size`,
centre-cropped to size x size, float32 [3, size, size] in [-1, 1] (what the VAE encodes).

A file PIL cannot decode (corrupt, truncated, not an image, a decompression bomb) raises
UnreadableImage, which the data sources count and skip: one bad file in a million must not stop
a run.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from sfmobile.train.scenes.render import to_model_input

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")


class UnreadableImage(Exception):
    """The bytes are not an image PIL can decode (the reason is in the message)."""


def load_image(source: bytes | Path, size: int) -> torch.Tensor:
    """float32 [3, size, size] in [-1, 1] from encoded image bytes or a file path."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None
    pixels = np.asarray(resize_centre_crop(rgb, size))
    return torch.from_numpy(to_model_input(pixels))


def resize_centre_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size` (bicubic), then the central size x size square."""
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))
