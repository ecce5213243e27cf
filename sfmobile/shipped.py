"""Where the demo model that ships inside the package lives, and what it is.

The demo model is an sfmobile checkpoint folder (sfmobile.json + model.safetensors, fp16
weights) at sfmobile/data/demo_model/, written by `sfmobile ship-demo` from the training runs.
`sfmobile generate` and `sfmobile demo` use it when no --model is given. It was trained on
64x64 scenes, so that is the size it is run at unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from sfmobile.errors import CheckpointError

SHIPPED_DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo_model"
DEMO_PRESET = "demo"
DEMO_IMAGE_SIZE = 64  # pixels, square: the size of the scenes the demo model was trained on
REQUIRED_FILES = ("sfmobile.json", "model.safetensors")


def shipped_demo_path() -> Path:
    """The shipped demo checkpoint folder; CheckpointError when this install lacks it."""
    folder = SHIPPED_DEMO_DIR
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"the shipped demo model is not in this install ({folder} lacks "
            f"{', '.join(missing)}): pass --model PATH to use another checkpoint, or build it "
            f"from training runs with `sfmobile ship-demo --student runs/s8/student "
            f"--decoder runs/decoder/decoder --out {folder}` (docs/training.md)"
        )
    return folder
