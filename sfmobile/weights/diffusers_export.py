"""An sfmobile model written as a diffusers Stable Diffusion folder (`sfmobile convert --to
diffusers`): what StableDiffusionPipeline.from_pretrained loads.

Tensor names come from inverting the loaders' own key maps (components.COMPONENTS, i.e.
unet_keys / text_encoder_keys / vae_keys.diffusers_key_map), never from a second table. Configs
are written for diffusers, then read back through the loaders' config_from_diffusers: a model
whose architecture does not come back unchanged is not expressible as stock diffusers classes
(e.g. the efficient `snapfusion` UNet, whose stages have different block counts) and is refused
before anything is written. diffusers and transformers build the modules and save them, so they
check every tensor name and shape on the way out.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from sfmobile.config import StageConfig, TextEncoderConfig, UNetConfig, VAEConfig
from sfmobile.errors import ConfigError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.scheduler import _DIFFUSERS_DEFAULTS
from sfmobile.staged_folder import staged_folder
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.weights import text_encoder_keys, unet_keys, vae_keys
from sfmobile.weights.components import COMPONENTS

# Presets whose three parts all have stock diffusers classes (tests/test_convert_diffusers.py
# checks this list against every preset).
CONVERTIBLE_PRESETS = ("sd15", "tiny")


def _refuse(what: str, detail: str) -> ConfigError:
    return ConfigError(
        f"this {what} is not expressible as a stock diffusers {what} ({detail}). Presets that "
        f"convert: {', '.join(CONVERTIBLE_PRESETS)}; `sfmobile export` takes the others to bundles"
    )


def _uniform(units: tuple[int, ...], where: str) -> int:
    if len(set(units)) != 1:
        raise _refuse("UNet", f"{where} has transformer depths {units}; diffusers, one per stage")
    return units[0]


def unet_to_diffusers(config: UNetConfig) -> dict[str, Any]:
    """UNet2DConditionModel config of `config`; ConfigError when no stock UNet has its layout."""
    count = len(config.down)
    depths = [_uniform(s.units, f"down stage {i}") for i, s in enumerate(config.down)]
    attention = [bool(d) for d in depths]
    up_depths = [_uniform(s.units, f"up stage {i}") for i, s in enumerate(config.up)]
    cfg = {
        "block_out_channels": [s.channels for s in config.down],
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if d else "UpBlock2D" for d in up_depths],
        "layers_per_block": [len(s.units) for s in config.down],
        "attention_head_dim": [s.heads for s in config.down],
        "transformer_layers_per_block": [d or 1 for d in depths],
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "cross_attention_dim": config.cross_attention_dim,
        "time_embedding_dim": config.time_embed_dim,
        "flip_sin_to_cos": config.flip_sin_to_cos,
        "freq_shift": config.freq_shift,
        "norm_num_groups": config.norm_groups,
        "norm_eps": config.norm_eps,
        "use_linear_projection": config.use_linear_projection,
        "upcast_attention": config.upcast_attention,
    }
    if count and config.mid.units and config.mid.units[0]:
        cfg["transformer_layers_per_block"][-1] = config.mid.units[0]
    _check_round_trip(config, unet_keys.config_from_diffusers(cfg), "UNet")
    return cfg


def _without_unused_heads(config: UNetConfig) -> UNetConfig:
    """`config` with the heads of attention-free stages zeroed (they mean nothing)."""

    def clean(stage: StageConfig) -> StageConfig:
        return stage if any(stage.units) else replace(stage, heads=0)

    return replace(
        config,
        down=tuple(clean(s) for s in config.down),
        mid=clean(config.mid),
        up=tuple(clean(s) for s in config.up),
    )


def _check_round_trip(ours: Any, back: Any, what: str) -> None:
    if isinstance(ours, UNetConfig):
        ours, back = _without_unused_heads(ours), _without_unused_heads(back)
    if ours != back:
        field = next(f.name for f in fields(ours) if getattr(ours, f.name) != getattr(back, f.name))
        detail = f"{field} is {getattr(ours, field)}; diffusers' nearest: {getattr(back, field)}"
        raise _refuse(what, detail)


def vae_to_diffusers(config: VAEConfig) -> dict[str, Any]:
    if config.encoder_channels != config.decoder_channels:
        detail = (
            f"decoder channels {config.decoder_channels} differ from the encoder's "
            f"{config.encoder_channels}: a compressed decoder"
        )
        raise _refuse("AutoencoderKL", detail)
    count = len(config.encoder_channels)
    cfg = {
        "block_out_channels": list(config.encoder_channels),
        "down_block_types": [vae_keys.DOWN_TYPE] * count,
        "up_block_types": [vae_keys.UP_TYPE] * count,
        "layers_per_block": config.layers_per_block,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "latent_channels": config.latent_channels,
        "norm_num_groups": config.norm_groups,
        "scaling_factor": config.scaling_factor,
    }
    _check_round_trip(config, vae_keys.config_from_diffusers(cfg), "AutoencoderKL")
    return cfg


def text_encoder_to_transformers(config: TextEncoderConfig) -> dict[str, Any]:
    cfg = {theirs: getattr(config, ours) for theirs, (ours, _) in text_encoder_keys.FIELDS.items()}
    _check_round_trip(config, text_encoder_keys.config_from_transformers(cfg), "CLIPTextModel")
    return cfg


def diffusers_state_dict(model: StableDiffusion, name: str) -> dict[str, torch.Tensor]:
    """One component's tensors under diffusers' names: the loader's key map inverted (the
    first of several names for one tensor is the current one)."""
    component = next(c for c in COMPONENTS if c.name == name)
    theirs_of: dict[str, str] = {}
    for theirs, ours in component.diffusers_key_map(component.config_of(model.config)).items():
        theirs_of.setdefault(ours, theirs)
    state = getattr(model, name).state_dict()
    missing = sorted(set(state) - set(theirs_of))
    if missing:
        raise ConfigError(f"{name}: no diffusers name for tensors {missing[:5]}")
    return {theirs_of[k]: v.detach().contiguous() for k, v in state.items()}


def _fill(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    """Load every tensor; only buffers that are not weights (position ids) may stay unset."""
    if not any(key.startswith("text_model.") for key in module.state_dict()):
        state = {key.removeprefix("text_model."): value for key, value in state.items()}
    result = module.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith("position_ids")]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"{name}: diffusers names do not match (missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]})"
        )


def assemble(unet, vae, text_encoder, tokenizer, scheduler):
    """A StableDiffusionPipeline of these parts, without the safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_diffusers_folder(model: StableDiffusion, out: Path) -> None:
    """Write `model` to `out` (replaced atomically) as a diffusers SD folder."""
    try:
        from diffusers import (
            AutoencoderKL,
            DDIMScheduler,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    except ImportError as error:
        raise InputError(
            f"convert --to diffusers needs diffusers and transformers ({error}); "
            "pip install 'sfmobile[bench]'"
        ) from None
    unet_cfg = unet_to_diffusers(model.config.unet)  # refuse before any work
    vae_cfg = vae_to_diffusers(model.config.vae)
    text_cfg = text_encoder_to_transformers(model.config.text_encoder)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_cfg))
    for module, name in ((unet, "unet"), (vae, "vae"), (text_encoder, "text_encoder")):
        _fill(module, diffusers_state_dict(model, name), name)
    s = model.scheduler
    scheduler = DDIMScheduler(**{key: getattr(s, key) for key in _DIFFUSERS_DEFAULTS})
    with staged_folder(out) as staging:
        vocab = staging / ".vocab"
        tokens = ClipTokenizer.from_folder(model.tokenizer_dir) if model.tokenizer_dir else None
        (tokens or ClipTokenizer.default()).save(vocab)
        tokenizer = CLIPTokenizer(
            str(vocab / "vocab.json"),
            str(vocab / "merges.txt"),
            pad_token="<|endoftext|>",
            model_max_length=model.config.text_encoder.max_positions,
        )
        pipe = assemble(unet, vae, text_encoder, tokenizer, scheduler)
        pipe.save_pretrained(staging)
        for file in vocab.iterdir():
            file.unlink()
        vocab.rmdir()
