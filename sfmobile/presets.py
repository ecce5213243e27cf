"""Named architectures: `sd15`, `snapfusion`, `demo`, plus `tiny` variants the tests build quickly.

Kept beside config.py (which defines the dataclasses) so each file stays short.
"""

from __future__ import annotations

from dataclasses import replace

from sfmobile.config import ModelConfig, StageConfig, TextEncoderConfig, UNetConfig, VAEConfig
from sfmobile.errors import ConfigError


def sd15_unet() -> UNetConfig:
    """Exactly Stable Diffusion 1.5's UNet (859,520,964 parameters).

    diffusers: CrossAttnDownBlock2D x3 + DownBlock2D, mid (ResNet, attention, ResNet),
    UpBlock2D + CrossAttnUpBlock2D x3, two units per down stage, three per up stage, 8 heads.
    """
    return UNetConfig(
        down=(
            StageConfig(320, (1, 1), resample=True),
            StageConfig(640, (1, 1), resample=True),
            StageConfig(1280, (1, 1), resample=True),
            StageConfig(1280, (0, 0)),
        ),
        mid=StageConfig(1280, (1, 0)),
        up=(
            StageConfig(1280, (0, 0, 0), resample=True),
            StageConfig(1280, (1, 1, 1), resample=True),
            StageConfig(640, (1, 1, 1), resample=True),
            StageConfig(320, (1, 1, 1)),
        ),
    )


def snapfusion_unet() -> UNetConfig:
    """The efficient UNet of SnapFusion's Table 3, stage by stage against SD-1.5.

    (cross-attention blocks, ResNet blocks), SD-1.5 -> SnapFusion:
      Down-1 (64x64 latent, 320 ch)  (2, 2) -> (0, 2): both ResNets, no attention.
      Down-2 (1/16, 640)             (2, 2) unchanged.
      Down-3 (1/32, 1280)            (2, 2) -> (2, 1): one ResNet followed by a depth-2 transformer.
      Mid    (1/64, 1280)            (1, 7) -> (1, 4).
      Up-1   (1/32, 1280)            (3, 3) -> (6, 2): two ResNets, each followed by a depth-3
                                     transformer (the paper does not say how the six sit).
      Up-2   (1/16, 640)             (3, 3) unchanged.
      Up-3   (1/8, 320)              (3, 3) -> (0, 3): three ResNets, no attention.

    The Mid section is diffusers' down_blocks[3] + mid_block + up_blocks[0]. Which of its seven
    ResNets go is our choice, forced by the skip connections: every ResNet of up_blocks[0] pops
    one skip, and at 1/64 the down path pushes Down-3's down-sampler output plus one per
    down_blocks[3] ResNet, so up_blocks[0] must have one ResNet more than down_blocks[3]. With
    four ResNets and one attention in all we keep: down_blocks[3] 1 ResNet, mid 1 ResNet + the
    attention, up_blocks[0] 2 ResNets. Each kept block maps onto the SD-1.5 block of the same
    position, so initialising from SD-1.5 copies it (see weights/snapfusion_init.py).
    """
    return UNetConfig(
        down=(
            StageConfig(320, (0, 0), resample=True),
            StageConfig(640, (1, 1), resample=True),
            StageConfig(1280, (2,), resample=True),
            StageConfig(1280, (0,)),
        ),
        mid=StageConfig(1280, (1,)),
        up=(
            StageConfig(1280, (0, 0), resample=True),
            StageConfig(1280, (3, 3), resample=True),
            StageConfig(640, (1, 1, 1), resample=True),
            StageConfig(320, (0, 0, 0)),
        ),
    )


def demo_unet() -> UNetConfig:
    """A small UNet of the SnapFusion layout, sized to train on two CPU cores in about an hour
    (docs/training.md): no attention at the highest resolution (Down-1, Up-3), cross-attention
    at the lower ones, a depth-2 transformer pair in Up-1, channels 32/64/96/96.

    On 64x64 images (8x8 latents) the four stages run at 8, 4, 2 and 1 pixels, so norm_groups
    is 16, not SD's 32: at 1x1 a group of 32 over 96 channels would normalise 3 numbers.
    """
    return UNetConfig(
        down=(
            StageConfig(32, (0, 0), heads=4, resample=True),
            StageConfig(64, (1, 1), heads=4, resample=True),
            StageConfig(96, (1,), heads=4, resample=True),
            StageConfig(96, (0,), heads=4),
        ),
        mid=StageConfig(96, (1,), heads=4),
        up=(
            StageConfig(96, (0, 0), heads=4, resample=True),
            StageConfig(96, (2, 2), heads=4, resample=True),
            StageConfig(64, (1, 1, 1), heads=4, resample=True),
            StageConfig(32, (0, 0, 0), heads=4),
        ),
        cross_attention_dim=128,
        time_embed_dim=128,
        time_proj_dim=32,
        norm_groups=16,
    )


def demo_text_encoder() -> TextEncoderConfig:
    """CLIP's text transformer at width 128, 3 layers (captions are short and their vocabulary
    small); the full 49,408-token embedding stays so the shipped tokenizer works unchanged."""
    return TextEncoderConfig(width=128, layers=3, heads=4, mlp_dim=512)


def demo_vae() -> VAEConfig:
    """SD-1.x's autoencoder design (8x down-sampling, 4 latent channels, mid attention) at
    channels 32/32/64/64 and one ResNet per encoder level. norm_groups 16 keeps SnapFusion's
    half-channel decoder (16/16/32/32, VAEConfig.pruned) valid. scaling_factor is measured by
    `sfmobile train vae` and stored with the trained weights."""
    return VAEConfig(
        encoder_channels=(32, 32, 64, 64),
        decoder_channels=(32, 32, 64, 64),
        layers_per_block=1,
        norm_groups=16,
    )


def tiny_unet() -> UNetConfig:
    """The sd15 layout at reduced width, for fast parity tests."""
    return UNetConfig(
        down=(
            StageConfig(32, (1, 1), heads=2, resample=True),
            StageConfig(64, (1, 1), heads=2, resample=True),
            StageConfig(64, (0, 0), heads=2),
        ),
        mid=StageConfig(64, (1, 0), heads=2),
        up=(
            StageConfig(64, (0, 0, 0), heads=2, resample=True),
            StageConfig(64, (1, 1, 1), heads=2, resample=True),
            StageConfig(32, (1, 1, 1), heads=2),
        ),
        cross_attention_dim=32,
        time_embed_dim=128,
        time_proj_dim=32,
    )


def narrowed(config: UNetConfig, divisor: int, cross_attention_dim: int) -> UNetConfig:
    """The same layout with every channel count divided by `divisor` (for fast tests)."""

    def narrow(stage: StageConfig) -> StageConfig:
        return replace(stage, channels=stage.channels // divisor)

    return replace(
        config,
        down=tuple(narrow(s) for s in config.down),
        mid=narrow(config.mid),
        up=tuple(narrow(s) for s in config.up),
        time_proj_dim=config.time_proj_dim // divisor,
        time_embed_dim=config.time_embed_dim // divisor,
        cross_attention_dim=cross_attention_dim,
    )


_BUILDERS = {
    "sd15": lambda: ModelConfig(unet=sd15_unet()),
    "snapfusion": lambda: ModelConfig(unet=snapfusion_unet()),
    "snapfusion-pruned-decoder": lambda: ModelConfig(
        unet=snapfusion_unet(), vae=VAEConfig().pruned()
    ),
    "demo": lambda: ModelConfig(unet=demo_unet(), text_encoder=demo_text_encoder(), vae=demo_vae()),
    "tiny": lambda: ModelConfig(
        unet=tiny_unet(),
        text_encoder=TextEncoderConfig(width=32, layers=2, heads=4, mlp_dim=64),
        vae=VAEConfig(encoder_channels=(32, 64), decoder_channels=(32, 64), layers_per_block=1),
    ),
}

PRESET_NAMES = tuple(_BUILDERS)


def preset(name: str) -> ModelConfig:
    """The ModelConfig of a named preset."""
    if name not in _BUILDERS:
        raise ConfigError(f"unknown preset {name!r}: expected one of {', '.join(PRESET_NAMES)}")
    return _BUILDERS[name]()
