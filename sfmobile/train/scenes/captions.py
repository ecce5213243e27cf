"""Word a scene's ground truth as a caption, in varied natural phrasings.

The caption is a pure function of (objects, background, relation, which attributes to state,
and the rng's template choices): it never says anything the ground truth does not hold, and it
states every attribute listed in `stated` (colour and shape of every object, the background
always; size when chosen; position for a single object; relation for a pair).
"""

from __future__ import annotations

import numpy as np

from sfmobile.train.scenes.scene import Background, SceneObject

POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left"),
    "right": ("on the right", "at the right"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
    "centre": ("in the centre", "in the middle"),
}
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "above": ("above",),
    "below": ("below", "under", "beneath"),
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
}
_ENDS = {"vertical": ("at the top", "at the bottom"), "horizontal": ("on the left", "on the right")}
_DIRECTION = {"vertical": "top to bottom", "horizontal": "left to right"}

# {obj}: "a small red circle"; {bare}: "small red circle"; {pos}/{pos_short}: single objects;
# {rel}: "above"; {other}: the reference object; {bg}: "on a blue background";
# {bg_short}: "on blue"; {bg_lead}: "a blue background with".
SINGLE_TEMPLATES: tuple[str, ...] = (
    "{obj} {pos} {bg}",
    "{bare}, {pos_short}, {bg_short}",
    "there is {obj} {pos}, {bg}",
    "{bg_lead} {obj} {pos}",
    "a picture of {obj} {pos} {bg}",
)
PAIR_TEMPLATES: tuple[str, ...] = (
    "{obj} {rel} {other} {bg}",
    "{bare} {rel} {other}, {bg_short}",
    "there is {obj} {rel} {other}, {bg}",
    "{bg_lead} {obj} {rel} {other}",
    "a picture of {obj} {rel} {other} {bg}",
)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def with_article(phrase: str) -> str:
    """'a red circle', 'an orange star'."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def object_phrase(obj: SceneObject, state_size: bool) -> str:
    """'small red circle' (no article); the size only when stated."""
    words = [obj.size] if state_size else []
    return " ".join([*words, obj.colour, obj.shape])


def background_phrases(background: Background, rng: np.random.Generator) -> dict[str, str]:
    """The three forms of the background phrase ({bg}, {bg_short}, {bg_lead})."""
    if background.kind == "plain":
        (name,) = background.colours
        backdrop = with_article(f"{name} background")
        return {
            "bg": _pick(rng, (f"on {backdrop}", f"against {backdrop}")),
            "bg_short": f"on {name}",
            "bg_lead": f"{backdrop} with",
        }
    first, last = background.colours
    start, end = _ENDS[background.kind]
    direction = _DIRECTION[background.kind]
    return {
        "bg": _pick(
            rng,
            (
                f"on a background fading from {first} {start} to {last} {end}",
                f"on a gradient from {first} {start} to {last} {end}",
            ),
        ),
        "bg_short": f"on {first} to {last}, {direction}",
        "bg_lead": with_article(f"{first} to {last} gradient from {direction} with"),
    }


def caption_for(
    objects: tuple[SceneObject, ...],
    background: Background,
    relation: str | None,
    state_size: bool,
    rng: np.random.Generator,
) -> str:
    """The caption of a single object (position stated) or a pair (relation stated)."""
    parts = background_phrases(background, rng)
    bare = object_phrase(objects[0], state_size)
    parts |= {"bare": bare, "obj": with_article(bare)}
    if relation is None:
        position = objects[0].position
        assert position is not None, "a single object always has a named position"
        parts |= {"pos": _pick(rng, POSITION_PHRASES[position]), "pos_short": position}
        template = _pick(rng, SINGLE_TEMPLATES)
    else:
        parts |= {
            "rel": _pick(rng, RELATION_PHRASES[relation]),
            "other": with_article(object_phrase(objects[1], state_size)),
        }
        template = _pick(rng, PAIR_TEMPLATES)
    return template.format(**parts)
