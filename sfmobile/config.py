"""Model architectures as data: the dataclasses every module is built from, and the presets.

A UNet is a list of stages. Each stage works at one resolution and channel count and holds a list
of *units*; a unit is one ResNet block followed by a cross-attention transformer of depth N
(N = 0: the unit is a plain ResNet). Down stages end with a stride-2 conv, up stages with a
nearest-neighbour upsample + conv. Every down unit and every down-sampler pushes a skip
connection; every up unit pops one (last in, first out), exactly as in diffusers' SD-1.x UNet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sfmobile.errors import ConfigError


@dataclass(frozen=True)
class StageConfig:
    """One resolution level of the UNet.

    units: transformer depth after each ResNet block (0 = no attention), e.g. (1, 1) for two
        ResNets each followed by one cross-attention block.
    heads: attention heads of this stage's transformers (head dim = channels // heads).
    resample: down stages: end with a stride-2 conv; up stages: end with a 2x upsample.
    """

    channels: int
    units: tuple[int, ...]
    heads: int = 8
    resample: bool = False


@dataclass(frozen=True)
class UNetConfig:
    """A UNet of the SD-1.x family. `mid` is the bottleneck stage (no resample, no skips)."""

    down: tuple[StageConfig, ...]
    mid: StageConfig
    up: tuple[StageConfig, ...]
    in_channels: int = 4
    out_channels: int = 4
    cross_attention_dim: int = 768
    time_embed_dim: int = 1280
    time_proj_dim: int = 320
    flip_sin_to_cos: bool = True
    freq_shift: float = 0.0
    norm_groups: int = 32
    norm_eps: float = 1e-5
    use_linear_projection: bool = False
    upcast_attention: bool = False
    guidance_embedding: bool = False

    def __post_init__(self) -> None:
        validate_unet(self)

    def skip_channels(self) -> list[int]:
        """Channels of every skip connection, in the order the down path pushes them."""
        skips = [self.down[0].channels]
        for stage in self.down:
            skips += [stage.channels] * len(stage.units)
            if stage.resample:
                skips.append(stage.channels)
        return skips

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> UNetConfig:
        data = dict(data)
        for key in ("down", "up"):
            data[key] = tuple(_stage_from_dict(s) for s in data[key])
        data["mid"] = _stage_from_dict(data["mid"])
        return UNetConfig(**data)


def _stage_from_dict(data: dict[str, Any]) -> StageConfig:
    return StageConfig(**{**data, "units": tuple(data["units"])})


def validate_unet(config: UNetConfig) -> None:
    """Reject layouts whose skip connections or channel counts cannot line up."""
    if not config.down or len(config.down) != len(config.up):
        raise ConfigError("UNet needs as many up stages as down stages (and at least one)")
    pushed = len(config.skip_channels())
    popped = sum(len(stage.units) for stage in config.up)
    if pushed != popped:
        raise ConfigError(
            f"UNet skip connections do not line up: the down path pushes {pushed}, "
            f"the up stages pop {popped} (one per up unit)"
        )
    if config.mid.channels != config.down[-1].channels:
        raise ConfigError("UNet mid stage must have the channels of the last down stage")
    for where, stage in _named_stages(config):
        if stage.channels % config.norm_groups:
            raise ConfigError(
                f"UNet {where}: channels {stage.channels} not divisible by "
                f"norm_groups {config.norm_groups}"
            )
        if not stage.units or any(depth < 0 for depth in stage.units):
            raise ConfigError(f"UNet {where}: units must be non-negative depths, at least one")
        if any(stage.units) and stage.channels % stage.heads:
            raise ConfigError(
                f"UNet {where}: channels {stage.channels} not divisible by heads {stage.heads}"
            )


def check_unet_fits(
    unet: UNetConfig, text_width: int, latent_channels: int, name: str = "UNet"
) -> None:
    """A UNet can only run beside a text encoder of its cross-attention width and a VAE of its
    latent channels (a teacher's, when `name` is a student's)."""
    if unet.cross_attention_dim != text_width:
        raise ConfigError(
            f"{name} cross_attention_dim {unet.cross_attention_dim} must equal the text "
            f"encoder width {text_width}"
        )
    if unet.in_channels != latent_channels:
        raise ConfigError(
            f"{name} in_channels {unet.in_channels} must equal the VAE's latent channels "
            f"{latent_channels}"
        )


def _named_stages(config: UNetConfig) -> list[tuple[str, StageConfig]]:
    return (
        [(f"down[{i}]", s) for i, s in enumerate(config.down)]
        + [("mid", config.mid)]
        + [(f"up[{i}]", s) for i, s in enumerate(config.up)]
    )


@dataclass(frozen=True)
class TextEncoderConfig:
    """CLIP text transformer (SD-1.x uses the ViT-L/14 text tower)."""

    vocab_size: int = 49408
    max_positions: int = 77
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    activation: str = "quick_gelu"
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.activation not in ("quick_gelu", "gelu"):
            raise ConfigError(
                f"text encoder activation {self.activation!r}: expected quick_gelu or gelu"
            )
        if self.width % self.heads:
            raise ConfigError(
                f"text encoder width {self.width} not divisible by heads {self.heads}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TextEncoderConfig:
        return TextEncoderConfig(**data)


@dataclass(frozen=True)
class VAEConfig:
    """SD-1.x autoencoder. The decoder may have its own (e.g. halved) channel counts."""

    encoder_channels: tuple[int, ...] = (128, 256, 512, 512)
    decoder_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    norm_groups: int = 32
    norm_eps: float = 1e-6
    scaling_factor: float = 0.18215

    def __post_init__(self) -> None:
        for name in ("encoder_channels", "decoder_channels"):
            channels = getattr(self, name)
            if any(c % self.norm_groups for c in channels):
                raise ConfigError(
                    f"VAE {name} {channels} not divisible by norm_groups {self.norm_groups}"
                )

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.encoder_channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> VAEConfig:
        data = dict(data)
        for key in ("encoder_channels", "decoder_channels"):
            data[key] = tuple(data[key])
        return VAEConfig(**data)

    def pruned(self) -> VAEConfig:
        """SnapFusion's compressed decoder: every decoder channel count halved."""
        return replace(self, decoder_channels=tuple(c // 2 for c in self.decoder_channels))


@dataclass(frozen=True)
class ModelConfig:
    """A whole text-to-image model: what a preset names and an sfmobile checkpoint stores."""

    unet: UNetConfig
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unet": self.unet.to_dict(),
            "text_encoder": self.text_encoder.to_dict(),
            "vae": self.vae.to_dict(),
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ModelConfig:
        try:
            return ModelConfig(
                unet=UNetConfig.from_dict(data["unet"]),
                text_encoder=TextEncoderConfig.from_dict(data["text_encoder"]),
                vae=VAEConfig.from_dict(data["vae"]),
            )
        except (KeyError, TypeError) as error:
            raise ConfigError(f"model config is malformed: {error}") from error
