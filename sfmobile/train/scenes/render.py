"""Draw a `Scene` into pixels: numpy gradient background, PIL shapes anti-aliased by supersampling.

Every shape fills its square bounding box (the star and the triangle are stretched to touch all
four sides), so a shape's size and place are its bounding box's, and the analyser can compare a
segmented blob with each shape's outline after scaling both to the same box.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from sfmobile.errors import InputError
from sfmobile.train.scenes.scene import COLOURS, SHAPES, Background, Scene, SceneObject

SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down: 16 coverage levels per pixel
CROSS_ARM = 0.36  # width of the cross's arms, fraction of its side
STAR_INNER = 0.5  # inner/outer radius of the five-pointed star (0.38 is the regular pentagram)


@cache
def shape_outline(shape: str) -> tuple[tuple[float, float], ...]:
    """The polygon of `shape` in the unit box [0,1]^2 (y down); () for the circle (an ellipse)."""
    if shape == "circle":
        return ()
    if shape == "square":
        return ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    if shape == "triangle":
        return ((0.5, 0.0), (1.0, 1.0), (0.0, 1.0))
    if shape == "cross":
        lo, hi = (1 - CROSS_ARM) / 2, (1 + CROSS_ARM) / 2
        return (
            (lo, 0.0), (hi, 0.0), (hi, lo), (1.0, lo), (1.0, hi), (hi, hi),
            (hi, 1.0), (lo, 1.0), (lo, hi), (0.0, hi), (0.0, lo), (lo, lo),
        )  # fmt: skip
    if shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, STAR_INNER)
        xs, ys = radii * np.cos(angles), radii * np.sin(angles)
        xs = (xs - xs.min()) / (xs.max() - xs.min())
        ys = (ys - ys.min()) / (ys.max() - ys.min())
        return tuple((float(x), float(y)) for x, y in zip(xs, ys, strict=True))
    raise InputError(f"shape must be one of {SHAPES}, got {shape!r}")


def shape_coverage(shape: str, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Coverage (0..1, float32, size x size) of `shape` drawn in `box` = (x0, y0, x1, y1), pixel
    units, on a size x size canvas."""
    scale = SUPERSAMPLE
    canvas = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = (v * scale for v in box)
    outline = shape_outline(shape)
    if not outline:
        draw.ellipse((x0, y0, x1, y1), fill=255)
    else:
        w, h = x1 - x0, y1 - y0
        draw.polygon([(x0 + u * w, y0 + v * h) for u, v in outline], fill=255)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def background_pixels(background: Background, size: int) -> np.ndarray:
    """The background alone, float32 size x size x 3 in 0..255; gradient ends sit on the first and
    last row (vertical) or column (horizontal)."""
    first = np.array(COLOURS[background.colours[0]], dtype=np.float32)
    if background.kind == "plain":
        return np.broadcast_to(first, (size, size, 3)).copy()
    last = np.array(COLOURS[background.colours[1]], dtype=np.float32)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    ramp = first[None, :] + t[:, None] * (last - first)[None, :]  # size x 3
    if background.kind == "vertical":
        return np.broadcast_to(ramp[:, None, :], (size, size, 3)).copy()
    if background.kind == "horizontal":
        return np.broadcast_to(ramp[None, :, :], (size, size, 3)).copy()
    raise InputError(f"background.kind must be plain/vertical/horizontal, got {background.kind!r}")


def object_box(obj: SceneObject, size: int) -> tuple[float, float, float, float]:
    """The object's bounding box in pixel units of a size x size image."""
    return tuple(v * size for v in obj.bbox())  # type: ignore[return-value]


def render_scene(scene: Scene, size: int = 64) -> np.ndarray:
    """The scene as uint8 size x size x 3 RGB (objects alpha-blended over the background)."""
    if size < 16:
        raise InputError(f"size must be at least 16 pixels, got {size}")
    image = background_pixels(scene.background, size)
    for obj in scene.objects:
        alpha = shape_coverage(obj.shape, object_box(obj, size), size)[:, :, None]
        colour = np.array(COLOURS[obj.colour], dtype=np.float32)
        image = image * (1.0 - alpha) + colour * alpha
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def to_model_input(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 -> float32 3 x H x W in [-1, 1], the layout a VAE encoder takes."""
    return (image.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0
