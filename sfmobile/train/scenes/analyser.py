"""Read a generated picture back: which colours, shapes, sizes, positions and background it shows.

Plain image processing, no learning, deterministic, so the score of a text-to-image model
("does the picture show what the prompt says?") does not depend on a second trained model:

1. Background: a plane a + b*x + c*y per channel, least-squares fitted to the 1-pixel border
   (refitted once without outliers); a plain background if both end-to-end changes are small,
   else a vertical or horizontal gradient whose end colours are the nearest named colours.
2. Pixels: each pixel is explained as a blend of the fitted background and one named colour;
   it is foreground when it differs from the background and the best blend is at least half
   that colour. Its class is that colour.
3. Objects: 4-connected regions of one class (components.py), dropping specks.
4. Each object: shape by the best soft IoU between its mask and every shape's outline, both
   scaled to a 24x24 box; size from its bounding-box side; position and relations from its
   bounding-box centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageFilter

from sfmobile.errors import InputError
from sfmobile.train.scenes.regions import label_components
from sfmobile.train.scenes.render import shape_coverage
from sfmobile.train.scenes.scene import (
    COLOUR_NAMES,
    COLOUR_RGB,
    POSITIONS,
    SHAPES,
    SIZE_THRESHOLD,
    Background,
    Scene,
)

GRADIENT_MIN_SPAN = 60.0  # RGB change across the image below which the background is plain
FOREGROUND_MIN_DEVIATION = 40.0  # RGB distance from the background a pixel needs to be an object
FOREGROUND_MIN_ALPHA = 0.5  # a foreground pixel is at least half its object colour
DEGENERATE_BLEND = 60.0  # colours this close to the local background cannot explain a pixel
MIN_OBJECT_AREA = 0.006  # of the image: smaller regions are specks, not objects
TEMPLATE_SIDE = 24
TEMPLATE_BLURS = (0.0, 0.8, 1.2, 1.6)  # pixels: soft-edged outputs lose corners and points


@dataclass(frozen=True)
class ObjectReading:
    """One detected object. centre/side: bounding box, fractions of the image side; area:
    fraction of the image; shape_score: soft IoU with the chosen shape's outline (0..1)."""

    shape: str
    colour: str
    size: str
    position: str
    centre: tuple[float, float]
    side: float
    area: float
    shape_score: float


@dataclass(frozen=True)
class SceneReading:
    """What the analyser sees: the background and the objects, largest first."""

    background: Background
    objects: tuple[ObjectReading, ...]


def nearest_colour(rgb: np.ndarray) -> str:
    """The named colour closest (Euclidean RGB) to one 0..255 triple."""
    distances = np.linalg.norm(COLOUR_RGB - np.asarray(rgb, dtype=np.float32), axis=1)
    return COLOUR_NAMES[int(np.argmin(distances))]


def fit_background(image: np.ndarray) -> tuple[np.ndarray, Background]:
    """(fitted background float32 H x W x 3, its named reading) from the image border."""
    h, w, _ = image.shape
    ys, xs = np.mgrid[0:h, 0:w]
    u, v = xs / (w - 1), ys / (h - 1)
    border = np.zeros((h, w), dtype=bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    design = np.stack([np.ones(border.sum()), u[border], v[border]], axis=1)
    values = image[border].astype(np.float64)
    keep = np.ones(len(values), dtype=bool)
    for _ in range(2):  # fit, drop outliers (an object touching the edge), refit
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = np.linalg.norm(values - design @ coef, axis=1)
        keep = residual <= max(3.0 * float(np.median(residual)), 20.0)
    origin, per_x, per_y = coef  # each a length-3 RGB vector
    model = origin + u[..., None] * per_x + v[..., None] * per_y
    span_x, span_y = float(np.linalg.norm(per_x)), float(np.linalg.norm(per_y))
    if max(span_x, span_y) < GRADIENT_MIN_SPAN:
        reading = Background("plain", (nearest_colour(np.median(values[keep], axis=0)),))
    elif span_y >= span_x:
        top = origin + 0.5 * per_x
        reading = Background("vertical", (nearest_colour(top), nearest_colour(top + per_y)))
    else:
        left = origin + 0.5 * per_y
        reading = Background("horizontal", (nearest_colour(left), nearest_colour(left + per_x)))
    return model.astype(np.float32), reading


def classify_pixels(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """int H x W: index into COLOUR_NAMES of each foreground pixel's colour, -1 on background."""
    deviation = image.astype(np.float32) - background  # H x W x 3
    towards = COLOUR_RGB[None, None, :, :] - background[:, :, None, :]  # H x W x K x 3
    length2 = np.maximum((towards**2).sum(-1), 1e-6)
    alpha = np.clip((deviation[:, :, None, :] * towards).sum(-1) / length2, 0.0, 1.0)
    residual = np.linalg.norm(deviation[:, :, None, :] - alpha[..., None] * towards, axis=-1)
    usable = (length2 >= DEGENERATE_BLEND**2) & (alpha >= FOREGROUND_MIN_ALPHA)
    residual = np.where(usable, residual, np.inf)
    best = np.argmin(residual, axis=-1)
    foreground = np.isfinite(np.min(residual, axis=-1))
    foreground &= np.linalg.norm(deviation, axis=-1) >= FOREGROUND_MIN_DEVIATION
    return np.where(foreground, best, -1)


def _to_template_box(mask: np.ndarray) -> np.ndarray:
    """A boolean mask cropped to its bounding box, scaled to TEMPLATE_SIDE^2 floats in 0..1."""
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scaled = Image.fromarray(crop.astype(np.uint8) * 255).resize(
        (TEMPLATE_SIDE, TEMPLATE_SIDE), Image.Resampling.BILINEAR
    )
    return np.asarray(scaled, dtype=np.float32) / 255.0


@cache
def shape_templates(side: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """Per shape, the masks it leaves when drawn `side` pixels wide, blurred by each of
    TEMPLATE_BLURS and cut at half coverage (what a soft-edged picture of it segments into),
    each scaled to the template box."""
    pad = 2 * int(np.ceil(max(TEMPLATE_BLURS))) + 1
    canvas = side + 2 * pad
    per_shape = []
    for shape in SHAPES:
        coverage = shape_coverage(shape, (pad, pad, pad + side, pad + side), canvas)
        drawn = Image.fromarray(np.rint(coverage * 255).astype(np.uint8))
        blurred = (
            drawn.filter(ImageFilter.GaussianBlur(s)) if s else drawn for s in TEMPLATE_BLURS
        )
        per_shape.append(tuple(_to_template_box(np.asarray(b) >= 128) for b in blurred))
    return tuple(per_shape)


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """(shape, soft IoU with its best-fitting template) for one object's boolean mask."""
    rows, cols = np.nonzero(mask)
    side = int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1
    blob = _to_template_box(mask)
    scores = [
        max(float(np.minimum(blob, t).sum() / np.maximum(blob, t).sum()) for t in templates)
        for templates in shape_templates(side)
    ]
    best = int(np.argmax(scores))
    return SHAPES[best], scores[best]


def nearest_position(centre: tuple[float, float]) -> str:
    """The named single-object position whose anchor is closest to `centre`."""
    return min(POSITIONS, key=lambda p: np.hypot(*np.subtract(POSITIONS[p], centre)))


def read_object(mask: np.ndarray, colour: str) -> ObjectReading:
    """Describe one component (boolean H x W mask over the whole image)."""
    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    shape, score = classify_shape(mask)
    side = max(x1 - x0, y1 - y0) / max(h, w)
    centre = ((x0 + x1) / 2 / w, (y0 + y1) / 2 / h)
    return ObjectReading(
        shape=shape,
        colour=colour,
        size="small" if side < SIZE_THRESHOLD else "large",
        position=nearest_position(centre),
        centre=(float(centre[0]), float(centre[1])),
        side=float(side),
        area=float(len(rows) / (h * w)),
        shape_score=score,
    )


def analyse(image: np.ndarray) -> SceneReading:
    """Read a uint8 H x W x 3 RGB picture (any square size >= 16; 64 or 128 from the generator)."""
    image = np.asarray(image)
    if (
        image.ndim != 3
        or image.shape[2] != 3
        or image.dtype != np.uint8
        or min(image.shape[:2]) < 16
    ):
        raise InputError(
            f"image must be uint8 H x W x 3 with H, W >= 16, got {image.dtype} {image.shape}"
        )
    model, background = fit_background(image)
    classes = classify_pixels(image, model)
    labels, count = label_components(classes)
    areas = np.bincount(labels[labels >= 0], minlength=count)
    colour_of = np.zeros(count, dtype=np.int64)
    colour_of[labels[labels >= 0]] = classes[labels >= 0]  # one class per component
    min_area = MIN_OBJECT_AREA * labels.size
    objects = [
        read_object(labels == k, COLOUR_NAMES[colour_of[k]])
        for k in np.argsort(-areas, kind="stable")
        if areas[k] >= min_area
    ]
    return SceneReading(background, tuple(objects))


def relation_between(subject: ObjectReading, reference: ObjectReading) -> str:
    """'above' / 'below' / 'left of' / 'right of': the dominant axis of the centres' offset."""
    dx = reference.centre[0] - subject.centre[0]
    dy = reference.centre[1] - subject.centre[1]
    if abs(dy) >= abs(dx):
        return "above" if dy > 0 else "below"
    return "left of" if dx > 0 else "right of"


def adheres(reading: SceneReading, truth: Scene) -> dict[str, bool]:
    """Which stated attributes of `truth` the reading shows.

    Keys: "objects" (every object's colour and shape, on the same detected object), then each
    attribute in truth.stated: "colour" / "shape" (every stated one present somewhere), "size",
    "position", "relation" (checked on the detected objects matched by colour and shape; False
    if one is missing), "background" (kind and colours); and "all" (every key above). Extra
    detected objects are not penalised.
    """
    matched = [
        next((o for o in reading.objects if (o.colour, o.shape) == (t.colour, t.shape)), None)
        for t in truth.objects
    ]
    result = {"objects": all(m is not None for m in matched)}
    stated = truth.stated
    if "colour" in stated:
        colours = {o.colour for o in reading.objects}
        result["colour"] = all(t.colour in colours for t in truth.objects)
    if "shape" in stated:
        shapes = {o.shape for o in reading.objects}
        result["shape"] = all(t.shape in shapes for t in truth.objects)
    if "size" in stated:
        result["size"] = all(
            m is not None and m.size == t.size for m, t in zip(matched, truth.objects, strict=True)
        )
    if "position" in stated:
        result["position"] = (
            matched[0] is not None and matched[0].position == truth.objects[0].position
        )
    if "relation" in stated:
        a, b = matched
        result["relation"] = (
            a is not None and b is not None and relation_between(a, b) == truth.relation
        )
    if "background" in stated:
        result["background"] = reading.background == truth.background
    result["all"] = all(result.values())
    return result
