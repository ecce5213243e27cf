"""Loading a diffusers Stable Diffusion folder (model_index.json, unet/, text_encoder/, vae/,
tokenizer/, scheduler/) into our modules, architecture from the folders' configs."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sfmobile.errors import CheckpointError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.scheduler import SchedulerConfig
from sfmobile.weights.components import COMPONENTS, Component, model_config_from_parts
from sfmobile.weights.safe_io import config_errors, read_json, read_tensors
from sfmobile.weights.strict import build_empty, load_strict, rename

# Weight file names diffusers and transformers write, most preferred first.
WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "pytorch_model.bin",
)
INDEX_SUFFIX = ".index.json"


def read_component_tensors(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """All tensors of one component folder (single file or sharded with an index)."""
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return read_tensors(folder / name), folder / name
        index = folder / (name + INDEX_SUFFIX)
        if index.is_file():
            shards = sorted(set(read_json(index).get("weight_map", {}).values()))
            tensors: dict[str, torch.Tensor] = {}
            for shard in shards:
                tensors.update(read_tensors(folder / shard))
            return tensors, index
    raise CheckpointError(f"{folder}: no weights file (expected one of {', '.join(WEIGHT_FILES)})")


def load_component(folder: Path, component: Component) -> tuple[nn.Module, object]:
    """Build one component from its folder's config.json and fill it strictly."""
    with config_errors(folder / "config.json"):
        config = component.config_from_diffusers(read_json(folder / "config.json"))
        module = build_empty(component.build, config)
    tensors, source = read_component_tensors(folder)
    tensors = {k: v for k, v in tensors.items() if k not in component.ignored}
    state, unexpected = rename(tensors, component.diffusers_key_map(config))
    load_strict(module, state, str(source), unexpected)
    return module, config


def load_diffusers_folder(path: Path) -> StableDiffusion:
    """A whole diffusers SD-1.x pipeline folder."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise CheckpointError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
    modules, configs = {}, {}
    for component in COMPONENTS:
        folder = path / component.name
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: missing component folder")
        modules[component.name], configs[component.name] = load_component(folder, component)
    scheduler_file = path / "scheduler" / "scheduler_config.json"
    with config_errors(scheduler_file):
        scheduler = SchedulerConfig.from_diffusers(
            read_json(scheduler_file), source=str(scheduler_file)
        )
    tokenizer_dir = path / "tokenizer"
    return StableDiffusion(
        config=model_config_from_parts(configs),
        unet=modules["unet"],
        text_encoder=modules["text_encoder"],
        vae=modules["vae"],
        scheduler=scheduler,
        tokenizer_dir=tokenizer_dir if tokenizer_dir.is_dir() else None,
        source=str(path),
    ).eval()
