"""The scene grammar: vocabulary, layout constants, held-out rule and the ground-truth dataclasses.

Every synthetic training image is one `Scene`: one or two flat-coloured shapes on a plain or
two-colour gradient background. The generator (generator.py) samples scenes, the renderer
(render.py) draws them, captions.py words them, and the analyser (analyser.py) reads them back,
all from the constants below. docs/scenes.md is the human-readable version of this file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Named colours, sRGB 0..255. Chosen so any two are at least ~95 apart (Euclidean RGB), which
# leaves the analyser room for a model's imprecise colours.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (250, 230, 40),
    "orange": (250, 130, 20),
    "purple": (130, 40, 170),
    "pink": (245, 130, 200),
    "cyan": (40, 210, 230),
    "brown": (130, 75, 20),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "grey": (128, 128, 128),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
COLOUR_RGB = np.array([COLOURS[name] for name in COLOUR_NAMES], dtype=np.float32)  # K x 3

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")

# Object size = side of its (square) bounding box as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.24, "large": 0.38}
SIZE_JITTER = 0.02
SIZE_THRESHOLD = (SIZES["small"] + SIZES["large"]) / 2  # the analyser's small/large cut

# Single objects: bounding-box centre (x, y), fractions of width/height, before jitter.
POSITIONS: dict[str, tuple[float, float]] = {
    "centre": (0.5, 0.5),
    "left": (0.27, 0.5),
    "right": (0.73, 0.5),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.73),
}
POSITION_JITTER = 0.04
BORDER_MARGIN = 0.04  # objects keep this far from the image edge, so the border is background

# Pairs: objects[0] <relation> objects[1] (subject, then reference).
RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")
INVERSE_RELATION = {
    "above": "below",
    "below": "above",
    "left of": "right of",
    "right of": "left of",
}

BACKGROUND_KINDS: tuple[str, ...] = ("plain", "vertical", "horizontal")
MIN_CONTRAST = 110.0  # RGB distance from an object colour to every background colour it sits on
MIN_GRADIENT_SPAN = 150.0  # RGB distance between the two ends of a gradient

# Held-out rule. The training split never shows these combinations; the held-out split shows at
# least one of them in every scene. Each shape loses exactly one colour, and four shape-pair
# relations are held out together with their mirror images ("circle below triangle" is the same
# picture as "triangle above circle").
HELDOUT_SHAPE_COLOURS: frozenset[tuple[str, str]] = frozenset(
    {
        ("circle", "green"),
        ("square", "purple"),
        ("triangle", "orange"),
        ("star", "cyan"),
        ("cross", "pink"),
    }
)
_HELDOUT_RELATIONS_STATED: tuple[tuple[str, str, str], ...] = (
    ("triangle", "above", "circle"),
    ("square", "left of", "star"),
    ("cross", "below", "square"),
    ("star", "right of", "triangle"),
)
HELDOUT_RELATIONS: frozenset[tuple[str, str, str]] = frozenset(
    set(_HELDOUT_RELATIONS_STATED)
    | {(b, INVERSE_RELATION[rel], a) for a, rel, b in _HELDOUT_RELATIONS_STATED}
)

ATTRIBUTES: tuple[str, ...] = ("colour", "shape", "size", "position", "relation", "background")


@dataclass(frozen=True)
class SceneObject:
    """One shape. `centre` is its bounding-box centre (x, y) and `side` its bounding-box side,
    both as fractions of the image side; `position` is the named place of a single object
    (None inside a pair, whose layout the relation states instead)."""

    shape: str
    colour: str
    size: str
    centre: tuple[float, float]
    side: float
    position: str | None = None

    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) as fractions of the image side."""
        half = self.side / 2
        cx, cy = self.centre
        return (cx - half, cy - half, cx + half, cy + half)


@dataclass(frozen=True)
class Background:
    """A plain colour, or a linear gradient: 'vertical' runs colours[0] (top row) to colours[1]
    (bottom row), 'horizontal' colours[0] (left column) to colours[1] (right column)."""

    kind: str
    colours: tuple[str, ...]


@dataclass(frozen=True)
class Scene:
    """The structured ground truth of one image and the caption rendered from it.

    relation: for pairs, objects[0] <relation> objects[1]; None for a single object.
    stated: the attributes the caption states (a subset of ATTRIBUTES); `adheres` checks these.
    """

    objects: tuple[SceneObject, ...]
    background: Background
    relation: str | None
    caption: str
    stated: frozenset[str]


def relation_triple(scene: Scene) -> tuple[str, str, str] | None:
    """(subject shape, relation, reference shape) of a pair, None for a single object."""
    if scene.relation is None:
        return None
    return (scene.objects[0].shape, scene.relation, scene.objects[1].shape)


def is_heldout(scene: Scene) -> bool:
    """True if the scene shows a held-out (shape, colour) pair or shape-pair relation."""
    if any((obj.shape, obj.colour) in HELDOUT_SHAPE_COLOURS for obj in scene.objects):
        return True
    return relation_triple(scene) in HELDOUT_RELATIONS


def contrast(colour: str, background: Background) -> float:
    """Smallest RGB distance from `colour` to any colour on the background (the gradient is the
    segment between its two end colours)."""
    point = np.array(COLOURS[colour], dtype=np.float64)
    ends = [np.array(COLOURS[name], dtype=np.float64) for name in background.colours]
    if len(ends) == 1:
        return float(np.linalg.norm(point - ends[0]))
    a, b = ends
    ab = b - a
    t = float(np.clip(np.dot(point - a, ab) / np.dot(ab, ab), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))
