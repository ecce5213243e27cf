"""The SD-1.x autoencoder (diffusers' AutoencoderKL), as an Encoder and a Decoder that each
export alone.

Encoder: images [B, 3, H, W] in [-1, 1] -> moments [B, 2 * latent, H / f, W / f] (mean, logvar),
    quant_conv included.
Decoder: latents [B, latent, h, w] (unscaled: already divided by scaling_factor) ->
    images [B, 3, h * f, w * f] in about [-1, 1], post_quant_conv included (the bundle's
    "decoder" is exactly this module).
The scaling factor lives in VAEConfig; the pipeline multiplies and divides, the modules do not.
The decoder takes `config.decoder_channels`, so `config.pruned()` gives SnapFusion's
half-channel decoder while the encoder keeps `config.encoder_channels`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sfmobile.config import VAEConfig
from sfmobile.models.layers import Attention, Downsample, ResnetBlock, Upsample

# diffusers' DiagonalGaussianDistribution clamps the log-variance to this range.
LOGVAR_RANGE = (-30.0, 20.0)


class SpatialSelfAttention(nn.Module):
    """GroupNorm, one-head self-attention over the h * w positions, residual add."""

    def __init__(self, channels: int, config: VAEConfig) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(config.norm_groups, channels, eps=config.norm_eps)
        self.self_attn = Attention(channels, heads=1, qkv_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x).reshape(batch, channels, height * width).transpose(1, 2)
        h = self.self_attn(h).transpose(1, 2).reshape(batch, channels, height, width)
        return x + h


class MidBlock(nn.Module):
    """ResNet, attention, ResNet at the lowest resolution."""

    def __init__(self, channels: int, config: VAEConfig) -> None:
        super().__init__()
        self.resnet_1 = ResnetBlock(channels, channels, None, config.norm_groups, config.norm_eps)
        self.attention = SpatialSelfAttention(channels, config)
        self.resnet_2 = ResnetBlock(channels, channels, None, config.norm_groups, config.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnet_2(self.attention(self.resnet_1(x)))


class Stage(nn.Module):
    """`count` ResNets (the first changes in_ch -> out_ch), then an optional resampler."""

    def __init__(
        self, in_ch: int, out_ch: int, count: int, resampler: nn.Module | None, config: VAEConfig
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock(
                in_ch if j == 0 else out_ch, out_ch, None, config.norm_groups, config.norm_eps
            )
            for j in range(count)
        )
        self.resample = resampler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.resample is None else self.resample(x)


class Encoder(nn.Module):
    """images -> moments; each stage but the last halves the resolution (right/bottom padding)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        channels = config.encoder_channels
        last = len(channels) - 1
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList(
            Stage(
                channels[max(i - 1, 0)],
                out_ch,
                config.layers_per_block,
                Downsample(out_ch, asymmetric_pad=True) if i < last else None,
                config,
            )
            for i, out_ch in enumerate(channels)
        )
        self.mid = MidBlock(channels[-1], config)
        self.norm_out = nn.GroupNorm(config.norm_groups, channels[-1], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[-1], 2 * config.latent_channels, 3, padding=1)
        self.quant_conv = nn.Conv2d(2 * config.latent_channels, 2 * config.latent_channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(images)
        for stage in self.down:
            x = stage(x)
        x = self.conv_out(F.silu(self.norm_out(self.mid(x))))
        return self.quant_conv(x)


class Decoder(nn.Module):
    """latents -> images; stages run from the lowest resolution up, channels reversed."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        channels = tuple(reversed(config.decoder_channels))
        last = len(channels) - 1
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)
        self.conv_in = nn.Conv2d(config.latent_channels, channels[0], 3, padding=1)
        self.mid = MidBlock(channels[0], config)
        self.up = nn.ModuleList(
            Stage(
                channels[max(i - 1, 0)],
                out_ch,
                config.layers_per_block + 1,
                Upsample(out_ch) if i < last else None,
                config,
            )
            for i, out_ch in enumerate(channels)
        )
        self.norm_out = nn.GroupNorm(config.norm_groups, channels[-1], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[-1], config.out_channels, 3, padding=1)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.mid(self.conv_in(self.post_quant_conv(latents)))
        for stage in self.up:
            x = stage(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class AutoencoderKL(nn.Module):
    """Encoder + Decoder. encode/decode work on unscaled latents (see the module docstring)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def moments(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [-1, 1] -> (mean, logvar) of the latent Gaussian, logvar clamped as diffusers."""
        mean, logvar = self.encoder(images).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images [-1, 1] -> the latent mean (deterministic; what inference and export use)."""
        return self.moments(images)[0]

    def sample(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """images [-1, 1] -> mean + std * noise, the training-time latent."""
        mean, logvar = self.moments(images)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> images in about [-1, 1]."""
        return self.decoder(latents)
