"""Decode one training image: any file PIL reads -> RGB, resized to cover the target shape and
centre-cropped to it, float32 [3, H, W] in [-1, 1] (what the VAE encodes).

The target is a square `size` (resize the shorter side, crop the middle) or, with aspect-ratio
buckets, the (height, width) of the bucket whose aspect ratio is nearest the image's, so a
portrait photo keeps most of its picture instead of losing top and bottom to a square crop.

A file PIL cannot decode (corrupt, truncated, not an image, a decompression bomb) raises
UnreadableImage, which the data sources count and skip: one bad file in a million must not stop
a run.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from sfmobile.errors import InputError
from sfmobile.train.scenes.render import to_model_input

IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")


class UnreadableImage(Exception):
    """The bytes are not an image PIL can decode (the reason is in the message)."""


@dataclass(frozen=True)
class Buckets:
    """Aspect-ratio buckets: the (height, width) shapes images are cropped to, each a multiple
    of 8 (the VAE's downscale), usually of about the same pixel count (e.g. 512x512, 448x576,
    576x448, 384x640, 640x384 for 512x512 training). An image goes to the bucket whose aspect
    ratio is nearest its own in log scale (2:1 and 1:2 are equally far from 1:1); ties go to
    the bucket listed first."""

    shapes: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.shapes:
            raise InputError("--buckets: give at least one HxW shape")
        for height, width in self.shapes:
            if height < 8 or width < 8 or height % 8 or width % 8:
                raise InputError(
                    f"--buckets: {height}x{width} is not two multiples of 8 (at least 8)"
                )
        if len(set(self.shapes)) != len(self.shapes):
            raise InputError(f"--buckets: a shape is listed twice in {self.text()}")

    @classmethod
    def parse(cls, text: str) -> Buckets:
        """From `HxW,HxW,...` (height first, as tensors are), e.g. `512x512,448x576`."""
        shapes = []
        for part in text.split(","):
            sides = part.strip().lower().split("x")
            if len(sides) != 2 or not all(side.strip().isdigit() for side in sides):
                raise InputError(f"--buckets: {part.strip()!r} is not HxW (e.g. 448x576)")
            shapes.append((int(sides[0]), int(sides[1])))
        return cls(tuple(shapes))

    def text(self) -> str:
        return ",".join(f"{h}x{w}" for h, w in self.shapes)

    def nearest(self, width: int, height: int) -> tuple[int, int]:
        """The (height, width) bucket for an image of width x height pixels."""
        ratio = math.log(width / height)
        return min(self.shapes, key=lambda shape: abs(math.log(shape[1] / shape[0]) - ratio))


def load_image(source: bytes | Path, size: int | Buckets) -> torch.Tensor:
    """float32 [3, H, W] in [-1, 1] from encoded image bytes or a file path: size x size, or the
    nearest bucket's shape."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            rgb = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise UnreadableImage(str(error) or type(error).__name__) from None
    shape = size.nearest(*rgb.size) if isinstance(size, Buckets) else (size, size)
    pixels = np.asarray(resize_centre_crop(rgb, shape))
    return torch.from_numpy(to_model_input(pixels))


def resize_centre_crop(image: Image.Image, shape: int | tuple[int, int]) -> Image.Image:
    """Resize (bicubic) to the smallest size that covers `shape` ((height, width), or an int for
    a square), then crop its middle to exactly that shape."""
    height, width = (shape, shape) if isinstance(shape, int) else shape
    old_w, old_h = image.size
    scale = max(width / old_w, height / old_h)
    new_w, new_h = max(width, round(old_w * scale)), max(height, round(old_h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return image.crop((left, top, left + width, top + height))
