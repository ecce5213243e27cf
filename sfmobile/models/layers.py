"""Building blocks shared by the UNet and the VAE, written to export cleanly.

Static shapes only, no data-dependent Python control flow, attention as plain matmul + softmax
(no fused kernels: ONNX, LiteRT and QNN all take it), optionally computed in query slices so the
4096x4096 score matrices of a 64x64 stage never exist at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_frequencies(dim: int, freq_shift: float) -> torch.Tensor:
    """The sinusoidal frequencies of diffusers' get_timestep_embedding (float32, [dim // 2]).
    Always on the CPU, even while a module is built on the meta device: checkpoints do not carry
    this buffer (weights/strict.py)."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device="cpu")
    exponent = -math.log(10000.0) * steps / (half - freq_shift)
    return torch.exp(exponent)


class TimestepEmbedding(nn.Module):
    """timestep [B] (float) -> sinusoidal projection -> MLP -> [B, embed_dim], inside the graph."""

    def __init__(
        self, proj_dim: int, embed_dim: int, flip_sin_to_cos: bool, freq_shift: float
    ) -> None:
        super().__init__()
        self.register_buffer(
            "frequencies", timestep_frequencies(proj_dim, freq_shift), persistent=False
        )
        self.flip_sin_to_cos = flip_sin_to_cos
        self.linear_1 = nn.Linear(proj_dim, embed_dim)
        self.linear_2 = nn.Linear(embed_dim, embed_dim)

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        angles = timestep.float()[:, None] * self.frequencies[None, :]
        sin, cos = torch.sin(angles), torch.cos(angles)
        projection = torch.cat([cos, sin] if self.flip_sin_to_cos else [sin, cos], dim=-1)
        return self.linear_2(F.silu(self.linear_1(projection)))


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with an optional time-embedding bias and a 1x1 shortcut."""

    def __init__(
        self, in_ch: int, out_ch: int, temb_dim: int | None, groups: int, eps: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_dim, out_ch) if temb_dim else None
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return shortcut + h


class Attention(nn.Module):
    """Multi-head attention: x [B, N, C] attends to context [B, M, Cc] (or to itself).

    query_chunk: if set, queries are processed in slices of that many rows (a static Python
    loop), bounding the score matrix to [B, heads, query_chunk, M].
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        context_dim: int | None = None,
        qkv_bias: bool = False,
        upcast: bool = False,
    ) -> None:
        super().__init__()
        context_dim = context_dim or dim
        self.heads = heads
        self.head_dim = dim // heads
        self.upcast = upcast
        self.query_chunk: int | None = None
        self.to_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.to_k = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.to_v = nn.Linear(context_dim, dim, bias=qkv_bias)
        self.to_out = nn.Linear(dim, dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        return x.reshape(batch, tokens, self.heads, self.head_dim).transpose(1, 2)

    def _attend(
        self, q: torch.Tensor, k_t: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        dtype = q.dtype
        if self.upcast:
            q, k_t = q.float(), k_t.float()
        scores = torch.matmul(q, k_t) * (self.head_dim**-0.5)
        if mask is not None:
            scores = scores + mask
        return torch.matmul(scores.softmax(dim=-1).to(dtype), v)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """mask: additive [queries, keys] mask on the scores (the text encoder's causal mask)."""
        context = x if context is None else context
        q = self._split_heads(self.to_q(x))
        k_t = self._split_heads(self.to_k(context)).transpose(2, 3)
        v = self._split_heads(self.to_v(context))
        tokens = q.shape[2]
        chunk = self.query_chunk or tokens
        if chunk >= tokens:
            out = self._attend(q, k_t, v, mask)
        else:
            slices = [
                self._attend(
                    q[:, :, start : start + chunk],
                    k_t,
                    v,
                    None if mask is None else mask[start : start + chunk],
                )
                for start in range(0, tokens, chunk)
            ]
            out = torch.cat(slices, dim=2)
        batch = out.shape[0]
        out = out.transpose(1, 2).reshape(batch, tokens, self.heads * self.head_dim)
        return self.to_out(out)


class FeedForward(nn.Module):
    """GEGLU feed-forward of the SD transformer block (inner width 4x)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = 4 * dim
        self.proj = nn.Linear(dim, inner * 2)
        self.out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return self.out(value * F.gelu(gate))


class TransformerBlock(nn.Module):
    """Self-attention, cross-attention to the text, feed-forward; pre-LayerNorm, residual."""

    def __init__(self, dim: int, heads: int, context_dim: int, upcast: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, upcast=upcast)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, context_dim=context_dim, upcast=upcast)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """diffusers' Transformer2DModel: GroupNorm, project in, `depth` blocks, project out, add."""

    def __init__(
        self,
        channels: int,
        heads: int,
        depth: int,
        context_dim: int,
        groups: int,
        linear_projection: bool,
        upcast: bool,
    ) -> None:
        super().__init__()
        self.linear_projection = linear_projection
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        make_proj = (
            (lambda: nn.Linear(channels, channels))
            if linear_projection
            else (lambda: nn.Conv2d(channels, channels, 1))
        )
        self.proj_in = make_proj()
        self.blocks = nn.ModuleList(
            TransformerBlock(channels, heads, context_dim, upcast) for _ in range(depth)
        )
        self.proj_out = make_proj()

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.norm(x)
        if not self.linear_projection:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        if self.linear_projection:
            h = self.proj_in(h)
        for block in self.blocks:
            h = block(h, context)
        if self.linear_projection:
            h = self.proj_out(h)
        h = h.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        if not self.linear_projection:
            h = self.proj_out(h)
        return x + h


class Downsample(nn.Module):
    """Stride-2 3x3 conv. The UNet pads 1 on every side; the VAE encoder pads only right and
    bottom (asymmetric_pad), as SD-1.x does."""

    def __init__(self, channels: int, asymmetric_pad: bool = False) -> None:
        super().__init__()
        self.asymmetric_pad = asymmetric_pad
        padding = 0 if asymmetric_pad else 1
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.asymmetric_pad:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsample followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def set_attention_slicing(model: nn.Module, query_chunk: int | None) -> None:
    """Compute every attention of `model` in query slices of `query_chunk` rows (None: whole)."""
    for module in model.modules():
        if isinstance(module, Attention):
            module.query_chunk = query_chunk
