"""LoRA files merged into a model's weights: W <- W + scale * (alpha / rank) * up @ down.

Merged before export, so a bundle runs at full speed with no adapter at run time. Two layouts
people download are read (safetensors only):
  kohya / A1111:  lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha
                  lora_te_<module with _>...  (the text encoder)
  diffusers/PEFT: unet.<module>.lora_A.weight / .lora_B.weight (bare <module>: the UNet)
                  text_encoder.<module>...     (an optional <module>.alpha in either)
<module> is the diffusers / transformers module name. The targets come from the same key tables
the checkpoint loaders use (unet_keys, text_encoder_keys), so every Linear or Conv weight of our
UNet and text encoder can take a LoRA: attention projections, feed-forward, ResNet convolutions.
Without an alpha the rank is the alpha (scale 1), as both kohya and diffusers do.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from sfmobile.bundle import sha256_of
from sfmobile.errors import CheckpointError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.weights import text_encoder_keys, unet_keys
from sfmobile.weights.safe_io import read_tensors
from sfmobile.weights.strict import SHOWN_PER_KIND

# Tensor-name suffix (kohya, then diffusers/PEFT) -> the part of a LoRA pair it holds.
SUFFIXES = {
    ".lora_down.weight": "down",
    ".lora_up.weight": "up",
    ".lora_A.weight": "down",
    ".lora_B.weight": "up",
    ".alpha": "alpha",
}
# Module-name prefixes of each layout -> our component.
KOHYA_PREFIXES = {"lora_unet_": "unet", "lora_te_": "text_encoder"}
PEFT_PREFIXES = {"unet.": "unet", "text_encoder.": "text_encoder"}
SCALE_PATTERN = re.compile(r"^(?P<path>.+):(?P<scale>[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)$")


@dataclass(frozen=True)
class LoraFile:
    """One `--lora FILE[:SCALE]`: the file and the multiplier of its update."""

    path: Path
    scale: float = 1.0

    @staticmethod
    def parse(text: str) -> LoraFile:
        """`FILE` or `FILE:SCALE` (a colon inside a Windows path without a scale is kept)."""
        match = SCALE_PATTERN.match(text)
        path, scale = (match["path"], float(match["scale"])) if match else (text, 1.0)
        if not math.isfinite(scale):
            raise InputError(f"--lora {text}: scale must be a finite number")
        return LoraFile(Path(path), scale)


def target_table(model: StableDiffusion) -> dict[str, tuple[str, str]]:
    """Every LoRA module name of both layouts -> (component, our weight name)."""
    maps = {
        "unet": unet_keys.diffusers_key_map(model.config.unet),
        "text_encoder": text_encoder_keys.diffusers_key_map(model.config.text_encoder),
    }
    table: dict[str, tuple[str, str]] = {}
    for component, key_map in maps.items():
        kohya = next(p for p, c in KOHYA_PREFIXES.items() if c == component)
        peft = next(p for p, c in PEFT_PREFIXES.items() if c == component)
        for theirs, ours in key_map.items():
            if not theirs.endswith(".weight"):
                continue
            module = theirs.removesuffix(".weight")
            table[peft + module] = (component, ours)
            table[kohya + module.replace(".", "_")] = (component, ours)
            if component == "unet":
                table[module] = (component, ours)
    return table


def group_pairs(tensors: dict[str, torch.Tensor], source: str) -> dict[str, dict]:
    """LoRA module name -> {"down", "up", "alpha"} tensors; unknown tensor names are an error."""
    pairs: dict[str, dict] = defaultdict(dict)
    unknown = []
    for key, tensor in tensors.items():
        suffix = next((s for s in SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            unknown.append(key)
            continue
        pairs[key.removesuffix(suffix)][SUFFIXES[suffix]] = tensor
    if unknown:
        raise CheckpointError(
            f"{source}: {len(unknown)} tensors are not LoRA down/up/alpha weights (kohya or "
            f"diffusers/PEFT layout expected): {_shown(unknown)}"
        )
    incomplete = [name for name, pair in pairs.items() if not {"down", "up"} <= set(pair)]
    if incomplete:
        raise CheckpointError(f"{source}: LoRA modules without both halves: {_shown(incomplete)}")
    return dict(pairs)


def low_rank_update(pair: dict, target: torch.Tensor, scale: float, where: str) -> torch.Tensor:
    """scale * (alpha / rank) * up @ down, shaped like `target` (Linear, or Conv up to k x k)."""
    down, up = pair["down"].float(), pair["up"].float()
    rank = down.shape[0]
    if up.shape[1] != rank:
        raise CheckpointError(f"{where}: up {list(up.shape)} does not fit down {list(down.shape)}")
    alpha = float(pair["alpha"]) if "alpha" in pair else float(rank)
    update = up.flatten(1) @ down.flatten(1) * (scale * alpha / rank)
    if update.numel() != target.numel() or update.shape[0] != target.shape[0]:
        raise CheckpointError(
            f"{where}: update {list(update.shape)} does not fit the weight {list(target.shape)}"
        )
    return update.reshape(target.shape)


@torch.no_grad()
def merge_lora(model: StableDiffusion, lora: LoraFile, partial: bool = False) -> dict:
    """Add one LoRA file's updates to `model`'s weights in place; returns its manifest record
    {"file", "sha256", "scale"}. LoRA modules the model does not have are an error naming them
    (a warning when `partial`); nothing is changed unless the whole file applies."""
    source = str(lora.path)
    if lora.path.suffix != ".safetensors":
        raise InputError(f"--lora {source}: expected a .safetensors file")
    pairs = group_pairs(read_tensors(lora.path), source)
    table = target_table(model)
    unmatched = sorted(name for name in pairs if name not in table)
    if unmatched and not partial:
        raise CheckpointError(
            f"{source}: {len(unmatched)} LoRA modules match nothing in this model: "
            f"{_shown(unmatched)} (--lora-partial merges the rest)"
        )
    if unmatched:
        warnings.warn(
            f"{source}: skipped {len(unmatched)} LoRA modules this model lacks: "
            + _shown(unmatched),
            stacklevel=2,
        )
    modules = model.modules()
    states = {name: modules[name].state_dict() for name in ("unet", "text_encoder")}
    updates = []
    for name, pair in pairs.items():
        if name in table:
            component, key = table[name]
            target = states[component][key]
            updates.append((target, low_rank_update(pair, target, lora.scale, f"{source}: {name}")))
    if not updates:
        raise CheckpointError(f"{source}: no LoRA module matches this model")
    for target, update in updates:
        target += update.to(target.dtype)
    record = {"file": lora.path.name, "sha256": sha256_of(lora.path), "scale": lora.scale}
    model.loras.append(record)
    return record


def merge_loras(model: StableDiffusion, loras: list[LoraFile], partial: bool = False) -> None:
    """Merge each file in order (updates add, so the order does not change the result)."""
    for lora in loras:
        merge_lora(model, lora, partial)


def _shown(names: list[str]) -> str:
    more = len(names) - SHOWN_PER_KIND
    return ", ".join(names[:SHOWN_PER_KIND]) + (f", ... (+{more} more)" if more > 0 else "")
