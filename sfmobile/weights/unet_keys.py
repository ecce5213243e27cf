"""The UNet's checkpoint layouts: diffusers `unet/config.json` -> UNetConfig, and key maps from
diffusers and CompVis tensor names onto ours.

A key map is built from two explicit tables: a prefix table (which of their blocks is which of
our units, generated from the config) and leaf tables (names inside a ResNet or transformer).
"""

from __future__ import annotations

from typing import Any

import torch

from sfmobile.config import StageConfig, UNetConfig
from sfmobile.errors import ConfigError

# Inside a ResNet block: our leaf -> CompVis leaf (diffusers uses our names).
RESNET_COMPVIS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
# Inside a transformer: our segment -> theirs (diffusers and CompVis agree here).
TRANSFORMER_LEAVES = {
    "blocks": "transformer_blocks",
    "to_out": "to_out.0",
    "ff.proj": "ff.net.0.proj",
    "ff.out": "ff.net.2",
}
COMPVIS_PREFIX = "model.diffusion_model."

# diffusers UNet2DConditionModel options outside the SD-1.x family, with the value we support.
SUPPORTED_DEFAULTS: dict[str, Any] = {
    "time_embedding_type": "positional",
    "class_embed_type": None,
    "addition_embed_type": None,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "dual_cross_attention": False,
    "resnet_time_scale_shift": "default",
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "encoder_hid_dim": None,
    "center_input_sample": False,
    "act_fn": "silu",
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "time_cond_proj_dim": None,
    "attention_type": "default",
    "reverse_transformer_layers_per_block": None,
    "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0,
    "timestep_post_act": None,
    "cross_attention_norm": None,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
}
DOWN_TYPES = {"CrossAttnDownBlock2D": True, "DownBlock2D": False}
UP_TYPES = {"CrossAttnUpBlock2D": True, "UpBlock2D": False}


def _per_block(value: Any, count: int, key: str) -> list:
    values = list(value) if isinstance(value, list | tuple) else [value] * count
    if len(values) != count:
        raise ConfigError(f"unet config {key}: expected {count} values, found {len(values)}")
    return values


def config_from_diffusers(cfg: dict[str, Any]) -> UNetConfig:
    """Map a diffusers SD-1.x-family `unet/config.json` onto a UNetConfig."""
    for key, supported in SUPPORTED_DEFAULTS.items():
        if cfg.get(key, supported) != supported:
            raise ConfigError(
                f"unet config {key}={cfg[key]!r} is not supported (expected {supported!r})"
            )
    channels = list(cfg["block_out_channels"])
    count = len(channels)
    down_types, up_types = cfg["down_block_types"], cfg["up_block_types"]
    for key, types, known in (("down", down_types, DOWN_TYPES), ("up", up_types, UP_TYPES)):
        unknown = [t for t in types if t not in known]
        if unknown or len(types) != count:
            raise ConfigError(f"unet config {key}_block_types {types}: expected {count} of {known}")
    if not isinstance(cfg.get("cross_attention_dim", 768), int):
        raise ConfigError("unet config cross_attention_dim: per-block values are not supported")
    layers = _per_block(cfg.get("layers_per_block", 2), count, "layers_per_block")
    heads = _per_block(
        cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8), count, "heads"
    )
    depth = _per_block(
        cfg.get("transformer_layers_per_block", 1), count, "transformer_layers_per_block"
    )
    down = tuple(
        StageConfig(
            channels[i],
            (depth[i] if DOWN_TYPES[down_types[i]] else 0,) * layers[i],
            heads[i],
            resample=i < count - 1,
        )
        for i in range(count)
    )
    mid = StageConfig(channels[-1], (depth[-1], 0), heads[-1])
    up = tuple(
        StageConfig(
            channels[count - 1 - i],
            (depth[count - 1 - i] if UP_TYPES[up_types[i]] else 0,) * (layers[count - 1 - i] + 1),
            heads[count - 1 - i],
            resample=i < count - 1,
        )
        for i in range(count)
    )
    return UNetConfig(
        down=down,
        mid=mid,
        up=up,
        in_channels=cfg.get("in_channels", 4),
        out_channels=cfg.get("out_channels", 4),
        cross_attention_dim=cfg.get("cross_attention_dim", 768),
        time_embed_dim=cfg.get("time_embedding_dim") or channels[0] * 4,
        time_proj_dim=channels[0],
        flip_sin_to_cos=cfg.get("flip_sin_to_cos", True),
        freq_shift=float(cfg.get("freq_shift", 0)),
        norm_groups=cfg.get("norm_num_groups", 32),
        norm_eps=cfg.get("norm_eps", 1e-5),
        use_linear_projection=cfg.get("use_linear_projection", False),
        upcast_attention=bool(cfg.get("upcast_attention", False)),
    )


def _diffusers_prefixes(config: UNetConfig) -> list[tuple[str, str]]:
    """(our prefix, diffusers prefix) for every block of the UNet."""
    pairs = [
        ("time_embed.", "time_embedding."),
        ("conv_in.", "conv_in."),
        ("norm_out.", "conv_norm_out."),
        ("conv_out.", "conv_out."),
    ]
    for ours, theirs, stages in (
        ("down_stages", "down_blocks", config.down),
        ("up_stages", "up_blocks", config.up),
    ):
        sampler = "downsample" if ours == "down_stages" else "upsample"
        for i, stage in enumerate(stages):
            for j in range(len(stage.units)):
                pairs.append((f"{ours}.{i}.units.{j}.resnet.", f"{theirs}.{i}.resnets.{j}."))
                pairs.append(
                    (f"{ours}.{i}.units.{j}.transformer.", f"{theirs}.{i}.attentions.{j}.")
                )
            pairs.append((f"{ours}.{i}.{sampler}.", f"{theirs}.{i}.{sampler}rs.0."))
    for k in range(len(config.mid.units)):
        pairs.append((f"mid.units.{k}.resnet.", f"mid_block.resnets.{k}."))
        pairs.append((f"mid.units.{k}.transformer.", f"mid_block.attentions.{k}."))
    return pairs


def _compvis_prefixes(config: UNetConfig) -> list[tuple[str, str]]:
    """(our prefix, CompVis prefix): input_blocks / middle_block / output_blocks numbering."""
    pairs = [
        ("time_embed.linear_1.", "time_embed.0."),
        ("time_embed.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("norm_out.", "out.0."),
        ("conv_out.", "out.2."),
    ]
    n = 1
    for i, stage in enumerate(config.down):
        for j in range(len(stage.units)):
            pairs.append((f"down_stages.{i}.units.{j}.resnet.", f"input_blocks.{n}.0."))
            pairs.append((f"down_stages.{i}.units.{j}.transformer.", f"input_blocks.{n}.1."))
            n += 1
        if stage.resample:
            pairs.append((f"down_stages.{i}.downsample.conv.", f"input_blocks.{n}.0.op."))
            n += 1
    position = 0
    for k, depth in enumerate(config.mid.units):
        pairs.append((f"mid.units.{k}.resnet.", f"middle_block.{position}."))
        pairs.append((f"mid.units.{k}.transformer.", f"middle_block.{position + 1}."))
        position += 2 if depth else 1
    n = 0
    for i, stage in enumerate(config.up):
        for j in range(len(stage.units)):
            pairs.append((f"up_stages.{i}.units.{j}.resnet.", f"output_blocks.{n}.0."))
            pairs.append((f"up_stages.{i}.units.{j}.transformer.", f"output_blocks.{n}.1."))
            n += 1
        if stage.resample:
            last = 2 if stage.units[-1] else 1
            pairs.append((f"up_stages.{i}.upsample.", f"output_blocks.{n - 1}.{last}."))
    return [(ours, COMPVIS_PREFIX + theirs) for ours, theirs in pairs]


def _rename_leaf(rest: str, table: dict[str, str]) -> str:
    dotted = "." + rest
    for ours, theirs in table.items():
        dotted = dotted.replace(f".{ours}.", f".{theirs}.")
    return dotted[1:]


def _key_map(config: UNetConfig, prefixes: list[tuple[str, str]], resnet: dict) -> dict[str, str]:
    with torch.device("meta"):
        from sfmobile.models.unet import UNet

        our_keys = list(UNet(config).state_dict())
    ordered = sorted(prefixes, key=lambda pair: -len(pair[0]))
    key_map = {}
    for key in our_keys:
        for ours, theirs in ordered:
            if key.startswith(ours):
                rest = key[len(ours) :]
                table = TRANSFORMER_LEAVES if ".transformer." in ours else resnet
                if ".resnet." not in ours and ".transformer." not in ours:
                    table = {}
                key_map[theirs + _rename_leaf(rest, table)] = key
                break
    return key_map


def diffusers_key_map(config: UNetConfig) -> dict[str, str]:
    """diffusers UNet2DConditionModel tensor name -> our tensor name."""
    return _key_map(config, _diffusers_prefixes(config), {})


def compvis_key_map(config: UNetConfig) -> dict[str, str]:
    """CompVis (`model.diffusion_model.*`) tensor name -> our tensor name."""
    return _key_map(config, _compvis_prefixes(config), RESNET_COMPVIS)
