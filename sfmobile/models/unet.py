"""The UNet, built from a UNetConfig: a down path of stages, a mid stage and an up path.

forward(sample [B, 4, h, w], timestep [B] float32, text [B, 77, D] (, guidance [B])) -> [B, 4, h, w]
The timestep embedding is computed inside the graph, so an exported model takes the raw timestep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sfmobile.config import StageConfig, UNetConfig
from sfmobile.models.layers import (
    Downsample,
    ResnetBlock,
    SpatialTransformer,
    TimestepEmbedding,
    Upsample,
)


class Unit(nn.Module):
    """One ResNet block, then (if depth > 0) a cross-attention transformer of that depth."""

    def __init__(self, in_ch: int, stage: StageConfig, depth: int, config: UNetConfig) -> None:
        super().__init__()
        self.resnet = ResnetBlock(
            in_ch, stage.channels, config.time_embed_dim, config.norm_groups, config.norm_eps
        )
        self.transformer = (
            SpatialTransformer(
                stage.channels,
                stage.heads,
                depth,
                config.cross_attention_dim,
                config.norm_groups,
                config.use_linear_projection,
                config.upcast_attention,
            )
            if depth
            else None
        )

    def forward(self, x: torch.Tensor, temb: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = self.resnet(x, temb)
        return x if self.transformer is None else self.transformer(x, text)


class DownStage(nn.Module):
    def __init__(self, in_ch: int, stage: StageConfig, config: UNetConfig) -> None:
        super().__init__()
        inputs = [in_ch] + [stage.channels] * (len(stage.units) - 1)
        self.units = nn.ModuleList(
            Unit(ch, stage, depth, config) for ch, depth in zip(inputs, stage.units, strict=True)
        )
        self.downsample = Downsample(stage.channels) if stage.resample else None

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, text: torch.Tensor, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        for unit in self.units:
            x = unit(x, temb, text)
            skips.append(x)
        if self.downsample is not None:
            x = self.downsample(x)
            skips.append(x)
        return x


class UpStage(nn.Module):
    """Each unit takes the running features concatenated with one popped skip connection."""

    def __init__(
        self, in_ch: int, stage: StageConfig, skip_channels: list[int], config: UNetConfig
    ) -> None:
        super().__init__()
        inputs = [in_ch] + [stage.channels] * (len(stage.units) - 1)
        self.units = nn.ModuleList(
            Unit(ch + skip, stage, depth, config)
            for ch, skip, depth in zip(inputs, skip_channels, stage.units, strict=True)
        )
        self.upsample = Upsample(stage.channels) if stage.resample else None

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, text: torch.Tensor, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        for unit in self.units:
            x = unit(torch.cat([x, skips.pop()], dim=1), temb, text)
        if self.upsample is not None:
            x = self.upsample(x)
        return x


class UNet(nn.Module):
    """An SD-1.x-family UNet whose block layout is data (see config.UNetConfig)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        first = config.down[0].channels
        self.time_embed = TimestepEmbedding(
            config.time_proj_dim, config.time_embed_dim, config.flip_sin_to_cos, config.freq_shift
        )
        self.guidance_embed = (
            TimestepEmbedding(
                config.time_proj_dim,
                config.time_embed_dim,
                config.flip_sin_to_cos,
                config.freq_shift,
            )
            if config.guidance_embedding
            else None
        )
        self.conv_in = nn.Conv2d(config.in_channels, first, 3, padding=1)
        channels = first
        self.down_stages = nn.ModuleList()
        for stage in config.down:
            self.down_stages.append(DownStage(channels, stage, config))
            channels = stage.channels
        self.mid = DownStage(channels, config.mid, config)
        skips = config.skip_channels()
        self.up_stages = nn.ModuleList()
        for stage in config.up:
            popped = [skips.pop() for _ in stage.units]
            self.up_stages.append(UpStage(channels, stage, popped, config))
            channels = stage.channels
        self.norm_out = nn.GroupNorm(config.norm_groups, channels, eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels, config.out_channels, 3, padding=1)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sample [B, C, h, w]; timestep [B]; text [B, 77, D]; guidance [B] (guided models)."""
        temb = self.time_embed(timestep)
        if self.guidance_embed is not None:
            if guidance is None:
                raise ValueError("this UNet is guidance-conditioned: pass `guidance` [B]")
            temb = temb + self.guidance_embed(guidance)
        x = self.conv_in(sample)
        skips = [x]
        for stage in self.down_stages:
            x = stage(x, temb, text, skips)
        x = self.mid(x, temb, text, [])
        for stage in self.up_stages:
            x = stage(x, temb, text, skips)
        return self.conv_out(F.silu(self.norm_out(x)))
