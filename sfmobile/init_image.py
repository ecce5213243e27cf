"""The starting picture of image-to-image: an RGB image -> the VAE encoder's input, float32
[1, 3, H, W] in [-1, 1] (2 * pixel / 255 - 1, in float32 as diffusers' VaeImageProcessor).

Size policy: a picture whose aspect ratio is within ASPECT_TOLERANCE of the generation's is
resized to height x width (Lanczos, diffusers' default resampling); any other is refused, since
stretching distorts it and cropping would choose its content for the user. A bundle generates
at its exported size only, so the picture must have that bundle's aspect ratio.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from sfmobile.errors import InputError

ASPECT_TOLERANCE = 0.01


def image_array(
    image: Image.Image, height: int, width: int, name: str = "init_image"
) -> np.ndarray:
    """`image` (any PIL mode) at height x width as [1, 3, H, W] float32 in [-1, 1]."""
    if not isinstance(image, Image.Image):
        raise InputError(f"{name} must be a PIL image, got {type(image).__name__}")
    have, want = image.width / image.height, width / height
    if abs(have / want - 1) > ASPECT_TOLERANCE:
        raise InputError(
            f"{name} is {image.width}x{image.height} (width x height), the generation is "
            f"{width}x{height}: crop it to that aspect ratio (it is resized, never stretched), "
            "or, with the torch backend, pass --width/--height of its aspect ratio"
        )
    if image.size != (width, height):
        image = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return (pixels / np.float32(255) * 2 - 1).transpose(2, 0, 1)[None].copy()
