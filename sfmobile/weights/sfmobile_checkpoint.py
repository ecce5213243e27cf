"""sfmobile's own checkpoint: a folder with `sfmobile.json` (architecture, scheduler) and
`model.safetensors` (tensors named `<component>.<our name>`), plus `tokenizer/` when the model
does not use the shipped vocabulary. Written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

import sfmobile
from sfmobile.config import ModelConfig
from sfmobile.errors import CheckpointError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.scheduler import SchedulerConfig
from sfmobile.staged_folder import staged_folder
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.weights.components import COMPONENTS
from sfmobile.weights.safe_io import config_errors, read_json, read_tensors
from sfmobile.weights.strict import build_empty, load_strict

FORMAT = "sfmobile-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "sfmobile.json"
WEIGHTS_FILE = "model.safetensors"


def is_sfmobile_checkpoint(path: Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def save_checkpoint(model: StableDiffusion, folder: Path, dtype: torch.dtype | None = None) -> None:
    """Write `model` to `folder` (replacing it), optionally casting floating tensors to `dtype`."""
    tensors = {}
    for name, module in model.modules().items():
        for key, tensor in module.state_dict().items():
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[f"{name}.{key}"] = tensor.contiguous()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "sfmobile_version": sfmobile.__version__,
        "model": model.config.to_dict(),
        "scheduler": model.scheduler.to_dict(),
    }
    if model.guidance_range is not None:
        meta["guidance_range"] = list(model.guidance_range)
    with staged_folder(folder) as staging:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if model.tokenizer_dir is not None:
            ClipTokenizer.from_folder(model.tokenizer_dir).save(staging / "tokenizer")


def load_checkpoint(folder: Path) -> StableDiffusion:
    """Read a folder written by save_checkpoint; tensors are cast to float32 (a float32 file's
    tensors become the parameters themselves)."""
    folder = Path(folder)
    meta = read_json(folder / CONFIG_FILE)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: not an sfmobile checkpoint of format version "
            f"{FORMAT_VERSION} (found {meta.get('format')!r} {meta.get('format_version')!r})"
        )
    with config_errors(folder / CONFIG_FILE):
        config = ModelConfig.from_dict(meta["model"])
        scheduler = SchedulerConfig.from_dict(meta["scheduler"], source=str(folder / CONFIG_FILE))
    tensors = read_tensors(folder / WEIGHTS_FILE)
    modules = {}
    for component in COMPONENTS:
        prefix = component.name + "."
        ours = [key for key in tensors if key.startswith(prefix)]
        # popped as cast, so an fp16 file's tensors are freed while their float32 copies are made
        state = {key[len(prefix) :]: tensors.pop(key).float() for key in ours}
        with config_errors(folder / CONFIG_FILE):
            module = build_empty(component.build, component.config_of(config))
        load_strict(module, state, f"{folder / WEIGHTS_FILE} ({component.name})")
        modules[component.name] = module
    if tensors:  # what no component claimed
        load_strict(torch.nn.Module(), {}, str(folder / WEIGHTS_FILE), list(tensors))
    tokenizer_dir = folder / "tokenizer"
    guidance_range = read_guidance_range(meta.get("guidance_range"), folder / CONFIG_FILE)
    return StableDiffusion(
        config=config,
        unet=modules["unet"],
        text_encoder=modules["text_encoder"],
        vae=modules["vae"],
        scheduler=scheduler,
        tokenizer_dir=tokenizer_dir if tokenizer_dir.is_dir() else None,
        source=str(folder),
        guidance_range=guidance_range,
    ).eval()


def read_guidance_range(value: object, source: Path) -> tuple[float, float] | None:
    """sfmobile.json's optional guidance_range: [low, high], 0 <= low <= high, finite."""
    if value is None:
        return None
    numbers = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
    if not numbers or not all(math.isfinite(v) for v in value) or not 0 <= value[0] <= value[1]:
        raise CheckpointError(
            f"{source}: guidance_range must be [low, high] with 0 <= low <= high, got {value!r}"
        )
    return float(value[0]), float(value[1])
