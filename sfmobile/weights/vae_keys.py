"""The VAE's checkpoint layouts: diffusers `vae/config.json` -> VAEConfig, and key maps from
diffusers and CompVis tensor names onto ours.

A key map is generated from two explicit tables: the block table (`_encoder_blocks`,
`_decoder_blocks`: which of their modules is which of ours, from the config) and the leaf tables
below (names inside a ResNet or the mid attention). CompVis numbers the decoder's `up.{i}` from
the highest resolution, diffusers' `up_blocks.{i}` from the lowest: CompVis up.3 = up_blocks.0
in a four-stage VAE. CompVis stores the attention projections as 1x1 convolutions
[C, C, 1, 1]; load_strict reshapes them onto our Linear weights.

`decoder_only=True` maps onto a standalone `Decoder` (our keys without `decoder.`): what a bundle
or a pruned decoder loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfmobile.config import VAEConfig
from sfmobile.errors import ConfigError

# Our leaf module -> (diffusers leaf, CompVis leaf); "" is the block itself (a conv or norm).
SELF = {"": ("", "")}
RESNET_LEAVES = {
    "norm1": ("norm1", "norm1"),
    "conv1": ("conv1", "conv1"),
    "norm2": ("norm2", "norm2"),
    "conv2": ("conv2", "conv2"),
}
SHORTCUT_LEAVES = {**RESNET_LEAVES, "conv_shortcut": ("conv_shortcut", "nin_shortcut")}
ATTENTION_LEAVES = {
    "norm": ("group_norm", "norm"),
    "self_attn.to_q": ("to_q", "q"),
    "self_attn.to_k": ("to_k", "k"),
    "self_attn.to_v": ("to_v", "v"),
    "self_attn.to_out": ("to_out.0", "proj_out"),
}
# Attention names of diffusers folders saved before diffusers 0.14 (still on the Hub).
LEGACY_DIFFUSERS_ATTENTION = {
    "self_attn.to_q": "query",
    "self_attn.to_k": "key",
    "self_attn.to_v": "value",
    "self_attn.to_out": "proj_attn",
}
COMPVIS_PREFIX = "first_stage_model."
DIFFUSERS, COMPVIS = 0, 1

# diffusers AutoencoderKL options outside SD-1.x, with the value we support.
SUPPORTED_DEFAULTS: dict[str, Any] = {
    "act_fn": "silu",
    "use_quant_conv": True,
    "use_post_quant_conv": True,
    "mid_block_add_attention": True,
    "shift_factor": None,
    "latents_mean": None,
    "latents_std": None,
}
DOWN_TYPE, UP_TYPE = "DownEncoderBlock2D", "UpDecoderBlock2D"


def config_from_diffusers(config_json: dict[str, Any]) -> VAEConfig:
    """Map a diffusers AutoencoderKL `vae/config.json` onto a VAEConfig (both halves alike)."""
    class_name = config_json.get("_class_name", "AutoencoderKL")
    if class_name != "AutoencoderKL":
        raise ConfigError(f"vae config _class_name={class_name!r}: expected 'AutoencoderKL'")
    for key, supported in SUPPORTED_DEFAULTS.items():
        if config_json.get(key, supported) != supported:
            raise ConfigError(
                f"vae config {key}={config_json[key]!r} is not supported (expected {supported!r})"
            )
    if "block_out_channels" not in config_json:
        raise ConfigError("vae config: missing block_out_channels")
    channels = tuple(config_json["block_out_channels"])
    for key, block_type in (("down_block_types", DOWN_TYPE), ("up_block_types", UP_TYPE)):
        types = list(config_json.get(key, [block_type] * len(channels)))
        if types != [block_type] * len(channels):
            raise ConfigError(
                f"vae config {key}={types}: expected {len(channels)} x {block_type!r} "
                f"(one per block_out_channels entry)"
            )
    return VAEConfig(
        encoder_channels=channels,
        decoder_channels=channels,
        layers_per_block=config_json.get("layers_per_block", 1),
        in_channels=config_json.get("in_channels", 3),
        out_channels=config_json.get("out_channels", 3),
        latent_channels=config_json.get("latent_channels", 4),
        norm_groups=config_json.get("norm_num_groups", 32),
        norm_eps=1e-6,
        scaling_factor=float(config_json.get("scaling_factor", 0.18215)),
    )


@dataclass(frozen=True)
class Block:
    """One module in all three namings, with the table of leaves inside it."""

    ours: str
    diffusers: str
    compvis: str
    leaves: dict[str, tuple[str, str]]


def _resnet(ours: str, diffusers: str, compvis: str, in_ch: int, out_ch: int) -> Block:
    return Block(ours, diffusers, compvis, SHORTCUT_LEAVES if in_ch != out_ch else RESNET_LEAVES)


def _shared_blocks(part: str, channels: int) -> list[Block]:
    """conv_in and the mid block (named alike in encoder and decoder); our names are relative."""
    p, ch = part, channels
    return [
        Block("conv_in", f"{p}.conv_in", f"{p}.conv_in", SELF),
        _resnet("mid.resnet_1", f"{p}.mid_block.resnets.0", f"{p}.mid.block_1", ch, ch),
        Block("mid.attention", f"{p}.mid_block.attentions.0", f"{p}.mid.attn_1", ATTENTION_LEAVES),
        _resnet("mid.resnet_2", f"{p}.mid_block.resnets.1", f"{p}.mid.block_2", ch, ch),
    ]


def _output_blocks(part: str) -> list[Block]:
    return [
        Block("norm_out", f"{part}.conv_norm_out", f"{part}.norm_out", SELF),
        Block("conv_out", f"{part}.conv_out", f"{part}.conv_out", SELF),
    ]


def _encoder_blocks(config: VAEConfig) -> list[Block]:
    """Every module of our Encoder (names relative to it)."""
    channels = config.encoder_channels
    blocks = _shared_blocks("encoder", channels[-1])
    for i, out_ch in enumerate(channels):
        in_ch = channels[max(i - 1, 0)]
        for j in range(config.layers_per_block):
            blocks.append(
                _resnet(
                    f"down.{i}.resnets.{j}",
                    f"encoder.down_blocks.{i}.resnets.{j}",
                    f"encoder.down.{i}.block.{j}",
                    in_ch if j == 0 else out_ch,
                    out_ch,
                )
            )
        if i < len(channels) - 1:
            blocks.append(
                Block(
                    f"down.{i}.resample.conv",
                    f"encoder.down_blocks.{i}.downsamplers.0.conv",
                    f"encoder.down.{i}.downsample.conv",
                    SELF,
                )
            )
    blocks += _output_blocks("encoder")
    blocks.append(Block("quant_conv", "quant_conv", "quant_conv", SELF))
    return blocks


def _decoder_blocks(config: VAEConfig) -> list[Block]:
    """Every module of our Decoder (names relative to it); stage i is CompVis up.{n - 1 - i}."""
    channels = tuple(reversed(config.decoder_channels))
    count = len(channels)
    blocks = [Block("post_quant_conv", "post_quant_conv", "post_quant_conv", SELF)]
    blocks += _shared_blocks("decoder", channels[0])
    for i, out_ch in enumerate(channels):
        in_ch = channels[max(i - 1, 0)]
        compvis = f"decoder.up.{count - 1 - i}"
        for j in range(config.layers_per_block + 1):
            blocks.append(
                _resnet(
                    f"up.{i}.resnets.{j}",
                    f"decoder.up_blocks.{i}.resnets.{j}",
                    f"{compvis}.block.{j}",
                    in_ch if j == 0 else out_ch,
                    out_ch,
                )
            )
        if i < count - 1:
            blocks.append(
                Block(
                    f"up.{i}.resample.conv",
                    f"decoder.up_blocks.{i}.upsamplers.0.conv",
                    f"{compvis}.upsample.conv",
                    SELF,
                )
            )
    return blocks + _output_blocks("decoder")


def _join(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def _expand(blocks: list[Block], our_prefix: str, their_prefix: str, fmt: int) -> dict[str, str]:
    key_map = {}
    for block in blocks:
        theirs = block.compvis if fmt == COMPVIS else block.diffusers
        for our_leaf, their_leaves in block.leaves.items():
            for param in ("weight", "bias"):
                their_key = _join(their_prefix + theirs, their_leaves[fmt], param)
                key_map[their_key] = _join(our_prefix + block.ours, our_leaf, param)
                legacy = LEGACY_DIFFUSERS_ATTENTION.get(our_leaf)
                if fmt == DIFFUSERS and block.leaves is ATTENTION_LEAVES and legacy:
                    key_map[_join(their_prefix + theirs, legacy, param)] = key_map[their_key]
    return key_map


def _key_map(config: VAEConfig, fmt: int, their_prefix: str, decoder_only: bool) -> dict[str, str]:
    if decoder_only:
        return _expand(_decoder_blocks(config), "", their_prefix, fmt)
    return {
        **_expand(_encoder_blocks(config), "encoder.", their_prefix, fmt),
        **_expand(_decoder_blocks(config), "decoder.", their_prefix, fmt),
    }


def diffusers_key_map(config: VAEConfig, decoder_only: bool = False) -> dict[str, str]:
    """diffusers AutoencoderKL tensor name -> ours (AutoencoderKL, or Decoder if decoder_only)."""
    return _key_map(config, DIFFUSERS, "", decoder_only)


def compvis_key_map(
    config: VAEConfig, decoder_only: bool = False, prefix: str = COMPVIS_PREFIX
) -> dict[str, str]:
    """CompVis (`first_stage_model.*`; prefix="" for a standalone VAE file) tensor name -> ours."""
    return _key_map(config, COMPVIS, prefix, decoder_only)
