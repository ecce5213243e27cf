"""The CLIP text transformer of SD-1.x (ViT-L/14's text tower), written to export cleanly.

forward(input_ids [B, 77] int32 or int64) -> last_hidden_state [B, 77, width] (float)

Token ids may be int32 (what LiteRT wants) or int64. The position embedding is added whole
(sliced to the static token count), so no position ids travel through the graph. The causal mask
is a constant additive buffer: 0 where a token may look (itself and earlier tokens), CAUSAL_MASK
elsewhere. CAUSAL_MASK is -1e4, not float32's minimum or -inf: the buffer follows the module into
float16, where float32's minimum becomes -inf (inf arithmetic breaks some runtimes and
quantizers), while -1e4 stays finite, scores + mask stays far from float16's -65504, and
exp(-1e4) is exactly 0 in every precision, so the result equals masking with -inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sfmobile.config import TextEncoderConfig
from sfmobile.models.layers import Attention

CAUSAL_MASK = -1e4


def causal_mask(tokens: int) -> torch.Tensor:
    """[tokens, tokens] additive mask: row i may attend to columns 0..i. Always on the CPU, even
    while the module is built on the meta device: checkpoints lack it (weights/strict.py)."""
    blocked = torch.ones(tokens, tokens, dtype=torch.bool, device="cpu").triu(diagonal=1)
    return torch.zeros(tokens, tokens, device="cpu").masked_fill(blocked, CAUSAL_MASK)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """CLIP's sigmoid approximation of GELU."""
    return x * torch.sigmoid(1.702 * x)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, activation: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.activation = quick_gelu if activation == "quick_gelu" else F.gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer layer: x + attention(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.attention = Attention(config.width, config.heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.mlp = MLP(config.width, config.mlp_dim, config.activation)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), mask=mask)
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Token + learned position embeddings, `layers` causal transformer layers, final LayerNorm."""

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Parameter(torch.empty(config.max_positions, config.width))
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.register_buffer("causal_mask", causal_mask(config.max_positions), persistent=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.01)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        tokens = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.position_embedding[:tokens]
        mask = self.causal_mask[:tokens, :tokens]
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_norm(x)
