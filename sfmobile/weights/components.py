"""One table of the three model components and how each checkpoint format names them.

Every loader (diffusers folder, CompVis file, sfmobile checkpoint, SnapFusion init) goes through
this table, so adding a component or a format is one row, not a new code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from sfmobile.config import ModelConfig, TextEncoderConfig, UNetConfig, VAEConfig
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.weights import text_encoder_keys, unet_keys, vae_keys


@dataclass(frozen=True)
class Component:
    """name: our name and the diffusers sub-folder; build: config -> module;
    config_from_diffusers: that sub-folder's config.json -> our config;
    diffusers_key_map / compvis_key_map: config -> {their tensor name: our tensor name};
    ignored: tensor names some checkpoints carry that are not weights (buffers)."""

    name: str
    build: Callable[[Any], nn.Module]
    config_of: Callable[[ModelConfig], Any]
    config_from_diffusers: Callable[[dict], Any]
    diffusers_key_map: Callable[[Any], dict[str, str]]
    compvis_key_map: Callable[[Any], dict[str, str]]
    ignored: frozenset[str] = frozenset()


COMPONENTS: tuple[Component, ...] = (
    Component(
        "unet",
        UNet,
        lambda model: model.unet,
        unet_keys.config_from_diffusers,
        unet_keys.diffusers_key_map,
        unet_keys.compvis_key_map,
    ),
    Component(
        "text_encoder",
        TextEncoder,
        lambda model: model.text_encoder,
        text_encoder_keys.config_from_transformers,
        text_encoder_keys.diffusers_key_map,
        text_encoder_keys.compvis_key_map,
        frozenset(text_encoder_keys.IGNORED_KEYS),
    ),
    Component(
        "vae",
        AutoencoderKL,
        lambda model: model.vae,
        vae_keys.config_from_diffusers,
        vae_keys.diffusers_key_map,
        vae_keys.compvis_key_map,
    ),
)


def model_config_from_parts(parts: dict[str, Any]) -> ModelConfig:
    """ModelConfig from per-component configs keyed by component name."""
    unet: UNetConfig = parts["unet"]
    text: TextEncoderConfig = parts["text_encoder"]
    vae: VAEConfig = parts["vae"]
    return ModelConfig(unet=unet, text_encoder=text, vae=vae)
