"""The calls every runtime implements, on numpy arrays, so the pipeline never knows which
runtime (PyTorch, ONNX Runtime, LiteRT) runs the components.

Shapes (B = batch, D = text width, h x w = latent size = image size / 8):
  encode_text: token ids int32 [B, 77]                                  -> float32 [B, 77, D]
  predict:     latents float32 [B, 4, h, w], timestep, text [B, 77, D]   -> float32 [B, 4, h, w]
  decode:      latents float32 [1, 4, h, w] (already divided by the scaling factor)
                                                                       -> float32 [1, 3, 8h, 8w]
  decode_tile: latents float32 [1, 4, t, t] -> float32 [1, 3, 8t, 8t]: a tile for tiled decoding
               (tiled_decode.py) at the backend's tile side (ModelInfo.decoder_tile; a backend
               without a fixed image size decodes any side)
  encode_image: image float32 [1, 3, 8h, 8w] in [-1, 1]                 -> float32 [1, 4, h, w]
               (the VAE posterior's mean, unscaled; image-to-image. A bundle exported without
               an encoder raises BundleError.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from sfmobile.scheduler import SchedulerConfig
from sfmobile.tokenizer import ClipTokenizer


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about the model a backend runs.

    unet_batches: the UNet batch sizes the backend accepts (an exported model is static:
    (1,) or (2,); PyTorch takes any). guidance_input: the UNet takes the guidance scale as
    an input (a guidance-distilled model: one call per step, no CFG batch). tokenizer: one
    already built from exact files (a bundle's manifest); None: read `tokenizer_dir`.
    latent_multiple: latent height and width must be multiples of it (2 ** the UNet's
    downsamplings, so every skip connection lines up). guidance_range: the (low, high) guidance
    a distilled model was trained for, None when unknown. decoder_tile: the latent side of the
    bundle's tile decoder (export --decoder-tile), None when it has none; a backend without a
    fixed image_size decodes tiles of any side.
    """

    scheduler: SchedulerConfig
    scaling_factor: float
    latent_channels: int
    vae_downscale: int
    text_width: int
    tokenizer_dir: Path | None
    unet_batches: tuple[int, ...] | None = None
    image_size: tuple[int, int] | None = None
    guidance_input: bool = False
    tokenizer: ClipTokenizer | None = None
    latent_multiple: int = 1
    guidance_range: tuple[float, float] | None = None
    decoder_tile: int | None = None


class Backend(Protocol):
    name: str
    info: ModelInfo

    def encode_text(self, token_ids: np.ndarray) -> np.ndarray: ...

    def predict(
        self,
        latents: np.ndarray,
        timestep: float,
        text: np.ndarray,
        guidance: float | None = None,
    ) -> np.ndarray: ...

    def decode(self, latents: np.ndarray) -> np.ndarray: ...

    def decode_tile(self, latents: np.ndarray) -> np.ndarray: ...

    def encode_image(self, image: np.ndarray) -> np.ndarray: ...
