"""When a guidance scale outside the range a model was distilled for (the manifest's
guidance.distilled_range) draws a warning, and its exact text: sfmobile.pipeline's
guidance_warning on a table of ranges and scales, for the Kotlin core's copy (GuidanceWarning.kt)
to be held to, so `sfmobile generate` and the app warn alike. The scales cover the bounds
themselves, both sides, and numbers that Python's `:g` writes in each of its forms."""

import json
from pathlib import Path

from sfmobile.pipeline import guidance_warning

GOLDEN_FORMAT = "sfmobile-guidance-warnings/1"

# (distilled range or None, guidance scales tried against it)
TABLE: tuple[tuple[tuple[float, float] | None, tuple[float, ...]], ...] = (
    (None, (0.0, 1.0, 7.5, 100.0)),
    ((2.0, 14.0), (2.0, 14.0, 7.5, 1.0, 1.999999, 14.000001, 0.0, 15.0, 100.0)),
    ((1.0, 8.5), (0.5, 8.25, 8.75, 9.0, 0.1, 0.3, 2.0 / 3.0, 123456.0, 1234567.0, 1e-05)),
    ((0.0, 0.0), (0.0, 0.00012345678, 1e20)),
    ((3.25, 3.25), (3.25, 3.2500001, 3.1)),
    ((0.5, 1234567.0), (0.25, 1234568.0)),
)


def write_guidance_warnings(out_dir: Path) -> dict:
    """Write out_dir/index.json: one case per (range, scale) with Python's warning or null."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cases = [
        {
            "distilled_range": None if span is None else list(span),
            "guidance": scale,
            "warning": guidance_warning(scale, span),
        }
        for span, scales in TABLE
        for scale in scales
    ]
    index = {"format": GOLDEN_FORMAT, "source": "sfmobile/pipeline.py guidance_warning",
             "cases": cases}  # fmt: skip
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index
