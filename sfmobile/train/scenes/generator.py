"""Seeded, infinite, index-addressable stream of captioned synthetic scenes.

Scene i of a generator depends only on (seed, split, i): it draws from
`np.random.default_rng([seed, split_id, i])`, so any worker or DDP rank can produce any index
without coordination, and training resumes exactly by index. The stream is reproducible within
one numpy version (numpy does not promise Generator streams across versions; nothing outside
training depends on them).

Typical use in a training loop (torch wrappers live in torch_data.py):

    gen = SceneGenerator(split="train", seed=0, size=64)
    sample = gen[12345]           # Sample(image uint8 64x64x3, caption str, scene Scene)
    x = sample.model_input()      # float32 3x64x64 in [-1, 1]
    eval_set = heldout_prompts(n=200, seed=0)   # list[Scene]: captions + ground truth
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sfmobile.errors import InputError
from sfmobile.train.scenes.captions import caption_for
from sfmobile.train.scenes.render import render_scene, to_model_input
from sfmobile.train.scenes.scene import (
    BACKGROUND_KINDS,
    BORDER_MARGIN,
    COLOUR_NAMES,
    COLOURS,
    HELDOUT_RELATIONS,
    HELDOUT_SHAPE_COLOURS,
    MIN_CONTRAST,
    MIN_GRADIENT_SPAN,
    POSITION_JITTER,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZE_JITTER,
    SIZES,
    Background,
    Scene,
    SceneObject,
    contrast,
    is_heldout,
)

SPLITS = {"train": 0, "heldout": 1}
PAIR_PROBABILITY = 0.5
SIZE_STATED_PROBABILITY = 0.75
BACKGROUND_KIND_WEIGHTS = (0.5, 0.25, 0.25)  # plain, vertical, horizontal
PAIR_NEAR, PAIR_FAR = 0.27, 0.73  # centres of a pair along the relation's axis
PAIR_AXIS_JITTER = 0.03  # outward only, so the two boxes never touch
PAIR_CROSS_JITTER = 0.10  # along the other axis
MAX_DRAWS = 1000

_HELDOUT_PAIRS = tuple(sorted(HELDOUT_SHAPE_COLOURS))
_HELDOUT_TRIPLES = tuple(sorted(HELDOUT_RELATIONS))


@dataclass(frozen=True)
class Sample:
    """One training example: image uint8 size x size x 3 RGB, its caption, its ground truth."""

    index: int
    image: np.ndarray
    caption: str
    scene: Scene

    def model_input(self) -> np.ndarray:
        """float32 3 x size x size in [-1, 1]."""
        return to_model_input(self.image)


class SceneGenerator:
    """Captioned scenes by index. Infinite: any index >= 0 is valid and there is no len().

    split="train" never shows a held-out combination (scene.HELDOUT_SHAPE_COLOURS,
    scene.HELDOUT_RELATIONS); split="heldout" shows at least one in every scene, cycling by
    index through: a single held-out (shape, colour) object, a pair containing one, a pair in a
    held-out relation.
    """

    def __init__(self, split: str = "train", seed: int = 0, size: int = 64) -> None:
        if split not in SPLITS:
            raise InputError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        if not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        if size not in (64, 128):
            raise InputError(f"size must be 64 or 128, got {size!r}")
        self.split, self.seed, self.size = split, seed, size

    def rng(self, index: int) -> np.random.Generator:
        if not isinstance(index, (int, np.integer)) or index < 0:
            raise InputError(f"scene index must be a non-negative integer, got {index!r}")
        return np.random.default_rng([self.seed, SPLITS[self.split], int(index)])

    def scene(self, index: int) -> Scene:
        """Ground truth and caption of scene `index` (cheap: nothing is drawn)."""
        rng = self.rng(index)
        if self.split == "heldout":
            return sample_heldout_scene(rng, index)
        for _ in range(MAX_DRAWS):
            scene = sample_scene(rng)
            if not is_heldout(scene):
                return scene
        raise AssertionError("no training scene found; the held-out rule excludes too much")

    def __getitem__(self, index: int) -> Sample:
        scene = self.scene(index)
        return Sample(index, render_scene(scene, self.size), scene.caption, scene)

    def __iter__(self) -> Iterator[Sample]:
        index = 0
        while True:
            yield self[index]
            index += 1


def heldout_prompts(n: int = 200, seed: int = 0) -> list[Scene]:
    """The fixed evaluation set: n held-out scenes (caption + ground truth), the same for the same
    (n, seed). Render one with `render.render_scene` to see the reference picture."""
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    generator = SceneGenerator(split="heldout", seed=seed)
    return [generator.scene(i) for i in range(n)]


def shard_indices(
    rank: int, world_size: int, worker: int = 0, num_workers: int = 1, start: int = 0
) -> Iterator[int]:
    """Scene indices for one DDP rank's DataLoader worker.

    Rank r sees r, r + world_size, r + 2*world_size, ... (from its start-th element on, for
    resuming); its DataLoader workers deal that sequence out round-robin, worker w taking
    elements w, w + num_workers, ... of it.
    """
    if not 0 <= rank < world_size:
        raise InputError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if not 0 <= worker < num_workers:
        raise InputError(f"worker must be in [0, num_workers={num_workers}), got {worker}")
    if start < 0:
        raise InputError(f"start must be non-negative, got {start}")
    step = start + worker
    while True:
        yield rank + step * world_size
        step += num_workers


def sample_scene(
    rng: np.random.Generator,
    pair: bool | None = None,
    first: tuple[str, str] | None = None,
    triple: tuple[str, str, str] | None = None,
) -> Scene:
    """Draw a scene; `first` fixes objects[0]'s (shape, colour), `triple` fixes a pair's
    (subject shape, relation, reference shape). Colours are redrawn until every object contrasts
    with the background."""
    if pair is None:
        pair = triple is not None or bool(rng.random() < PAIR_PROBABILITY)
    if pair:
        shape_a, relation, shape_b = triple or (
            _choice(rng, SHAPES),
            _choice(rng, RELATIONS),
            _choice(rng, SHAPES),
        )
        shapes, sizes = [shape_a, shape_b], [_choice(rng, tuple(SIZES)) for _ in range(2)]
    else:
        relation, shapes, sizes = None, [_choice(rng, SHAPES)], [_choice(rng, tuple(SIZES))]
    if first is not None:
        shapes[0] = first[0]
    for _ in range(MAX_DRAWS):
        background = _sample_background(rng)
        colours = [_choice(rng, COLOUR_NAMES) for _ in shapes]
        if first is not None:
            colours[0] = first[1]
        if pair and (shapes[0], colours[0]) == (shapes[1], colours[1]):
            continue  # two identical objects could not be told apart
        if all(contrast(c, background) >= MIN_CONTRAST for c in colours):
            break
    else:
        raise AssertionError(f"no background contrasts with {colours}")
    objects = _layout(rng, shapes, colours, sizes, relation)
    state_size = bool(rng.random() < SIZE_STATED_PROBABILITY)
    caption = caption_for(objects, background, relation, state_size, rng)
    stated = {"colour", "shape", "background", "size" if state_size else ""}
    stated.add("relation" if pair else "position")
    return Scene(objects, background, relation, caption, frozenset(stated - {""}))


def sample_heldout_scene(rng: np.random.Generator, index: int) -> Scene:
    """A scene with a held-out combination; the kind cycles with index % 3."""
    kind = index % 3
    if kind == 2:
        return sample_scene(rng, triple=_choice(rng, _HELDOUT_TRIPLES))
    return sample_scene(rng, pair=kind == 1, first=_choice(rng, _HELDOUT_PAIRS))


def _choice(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def _sample_background(rng: np.random.Generator) -> Background:
    kind = BACKGROUND_KINDS[int(rng.choice(3, p=BACKGROUND_KIND_WEIGHTS))]
    if kind == "plain":
        return Background(kind, (_choice(rng, COLOUR_NAMES),))
    while True:
        first, last = _choice(rng, COLOUR_NAMES), _choice(rng, COLOUR_NAMES)
        span = np.subtract(COLOURS[first], COLOURS[last], dtype=np.float64)
        if np.linalg.norm(span) >= MIN_GRADIENT_SPAN:
            return Background(kind, (first, last))


def _side(rng: np.random.Generator, size: str) -> float:
    return SIZES[size] + float(rng.uniform(-SIZE_JITTER, SIZE_JITTER))


def _clamp_centre(value: float, side: float) -> float:
    """Keep the box BORDER_MARGIN inside the image."""
    low = BORDER_MARGIN + side / 2
    return float(np.clip(value, low, 1.0 - low))


def _layout(
    rng: np.random.Generator,
    shapes: list[str],
    colours: list[str],
    sizes: list[str],
    relation: str | None,
) -> tuple[SceneObject, ...]:
    """Place one object at a named position, or two along the relation's axis."""
    sides = [_side(rng, s) for s in sizes]
    if relation is None:
        position = _choice(rng, tuple(POSITIONS))
        jitter = rng.uniform(-POSITION_JITTER, POSITION_JITTER, size=2)
        x, y = np.add(POSITIONS[position], jitter)
        centre = (_clamp_centre(x, sides[0]), _clamp_centre(y, sides[0]))
        return (SceneObject(shapes[0], colours[0], sizes[0], centre, sides[0], position),)
    # Subject first along the axis for "above"/"left of", second for "below"/"right of".
    subject_first = relation in ("above", "left of")
    outward = rng.uniform(0, PAIR_AXIS_JITTER, size=2)
    along = [PAIR_NEAR - outward[0], PAIR_FAR + outward[1]]
    if not subject_first:
        along.reverse()
    objects = []
    for k in range(2):
        a = _clamp_centre(along[k], sides[k])
        b = _clamp_centre(0.5 + float(rng.uniform(-PAIR_CROSS_JITTER, PAIR_CROSS_JITTER)), sides[k])
        centre = (b, a) if relation in ("above", "below") else (a, b)
        objects.append(SceneObject(shapes[k], colours[k], sizes[k], centre, sides[k]))
    return tuple(objects)
