"""The smallest model configs the training, decoder, VAE-swap and evaluation tests build.

Smaller than the `tiny` preset (which is sized for parity with diffusers' layouts): these
train for a few steps in seconds on one thread. Variations are arguments, not copies.
"""

from dataclasses import replace

from sfmobile.config import StageConfig, TextEncoderConfig, UNetConfig, VAEConfig

TEXT = TextEncoderConfig(width=32, layers=1, heads=2, mlp_dim=64)


def vae(**changes) -> VAEConfig:
    """SD-1.x's autoencoder layout (downsampling 8, 4 latent channels) at 8/16 channels."""
    base = VAEConfig(
        encoder_channels=(8, 8, 16, 16),
        decoder_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_groups=8,
    )
    return replace(base, **changes)


def unet(outer: int = 16, inner: int = 16) -> UNetConfig:
    """Two stages (one downsampling), attention in the inner stage and the middle only."""
    return UNetConfig(
        down=(
            StageConfig(outer, (0,), heads=2, resample=True),
            StageConfig(inner, (1,), heads=2),
        ),
        mid=StageConfig(inner, (1,), heads=2),
        up=(
            StageConfig(inner, (1, 1), heads=2, resample=True),
            StageConfig(outer, (0, 0), heads=2),
        ),
        cross_attention_dim=32,
        time_embed_dim=32,
        time_proj_dim=16,
        norm_groups=8,
    )
