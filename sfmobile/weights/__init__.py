"""Checkpoint formats (diffusers folders, CompVis single files, our own) mapped onto our modules.

`load_model(path)` picks the format from what the path holds; `load_model(None)` loads the demo
model shipped in the package (sfmobile/shipped.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sfmobile.errors import CheckpointError

if TYPE_CHECKING:
    from sfmobile.models.stable_diffusion import StableDiffusion


def load_model(path: str | Path | None, preset: str | None = None) -> StableDiffusion:
    """A diffusers folder, an sfmobile checkpoint folder, or a CompVis single file (whose
    architecture comes from `preset`, sd15 by default). No path: the demo model shipped in the
    package (preset None or "demo"); its fp16 weights load into float32 modules."""
    from sfmobile.shipped import DEMO_PRESET, shipped_demo_path
    from sfmobile.weights.compvis_file import load_single_file
    from sfmobile.weights.diffusers_folder import load_diffusers_folder
    from sfmobile.weights.sfmobile_checkpoint import is_sfmobile_checkpoint, load_checkpoint

    if path is None:
        if preset not in (None, DEMO_PRESET):
            raise CheckpointError(
                f"preset {preset!r} with no checkpoint path: only the {DEMO_PRESET!r} preset "
                "ships with weights; pass the path of a checkpoint"
            )
        return load_checkpoint(shipped_demo_path())
    path = Path(path)
    if path.is_dir():
        if is_sfmobile_checkpoint(path):
            return load_checkpoint(path)
        if (path / "model_index.json").is_file():
            return load_diffusers_folder(path)
        raise CheckpointError(
            f"{path}: neither a diffusers folder (model_index.json) nor an sfmobile checkpoint "
            "(sfmobile.json)"
        )
    if path.is_file():
        return load_single_file(path, preset or "sd15")
    raise CheckpointError(f"{path}: no such file or folder")
