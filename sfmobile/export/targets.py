"""What gets exported: each component wrapped to the bundle's tensor contract.

  text_encoder: input_ids int32 [1, 77]                                -> text_embeddings [1, 77, D]
  unet:         sample [B, 4, h, w], timestep [B], text_embeddings [B, 77, D] (, guidance [B])
                                                                       -> model_output [B, 4, h, w]
  decoder:      latents [1, 4, h, w] (divided by the scaling factor)   -> image [1, 3, 8h, 8w]
  encoder:      image [1, 3, 8h, 8w] in [-1, 1]     -> latent_mean [1, 4, h, w] (optional, img2img)
  decoder_tile: latents [1, 4, t, t]                                   -> image [1, 3, 8t, 8t]
                (optional: the same decoder at a smaller square size, for tiled decoding)
B is the CFG batch (1 or 2), fixed at export time; every shape is static. The encoder gives the
posterior's mean (not a sample), so image-to-image is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sfmobile.bundle import TensorSpec
from sfmobile.models.stable_diffusion import StableDiffusion

TOKENS = 77


@dataclass
class ExportTarget:
    """One component to export: the module (forward takes the inputs in order, returns one
    tensor) and its float32/int32 tensor contract before any quantization.

    release: called by a converter once the module is converted (traced), when only files are
    needed from then on; a no-op unless `release_after_conversion` set it."""

    name: str
    module: nn.Module
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    release: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)

    def example_args(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Plausible inputs of the right shapes and dtypes (for tracing, not calibration)."""
        generator = torch.Generator().manual_seed(seed)
        args = []
        for spec in self.inputs:
            if spec.dtype == "int32":
                args.append(torch.randint(0, 49408, spec.shape, generator=generator).int())
            elif spec.name in ("timestep", "guidance"):
                args.append(torch.full(spec.shape, 500.0 if spec.name == "timestep" else 7.5))
            else:
                args.append(torch.randn(spec.shape, generator=generator))
        return tuple(args)


class TextEncoderExport(nn.Module):
    def __init__(self, text_encoder: nn.Module) -> None:
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids)


class UNetExport(nn.Module):
    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, text_embeddings, guidance=None) -> torch.Tensor:
        return self.unet(sample, timestep, text_embeddings, guidance)


class DecoderExport(nn.Module):
    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.decoder = vae.decoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)


class EncoderExport(nn.Module):
    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image)


def export_targets(
    model: StableDiffusion,
    height: int,
    width: int,
    cfg_batch: int,
    with_encoder: bool = False,
    decoder_tile: int | None = None,
) -> list[ExportTarget]:
    """The components of `model` wrapped for export at one resolution and CFG batch: text
    encoder, UNet, decoder, (with_encoder) the VAE encoder, and (decoder_tile: a square tile's
    side in pixels) the decoder again at the tile's size."""
    config = model.config
    factor = config.vae.downscale
    h, w = height // factor, width // factor
    channels, width_text = config.unet.in_channels, config.text_encoder.width
    guided = config.unet.guidance_embedding
    batch = 1 if guided else cfg_batch

    def f32(name: str, *shape: int) -> TensorSpec:
        return TensorSpec(name, list(shape), "float32")

    unet_inputs = [
        f32("sample", batch, channels, h, w),
        f32("timestep", batch),
        f32("text_embeddings", batch, TOKENS, width_text),
    ]
    if guided:
        unet_inputs.append(f32("guidance", batch))
    targets = [
        ExportTarget(
            "text_encoder",
            TextEncoderExport(model.text_encoder).eval(),
            [TensorSpec("input_ids", [1, TOKENS], "int32")],
            [f32("text_embeddings", 1, TOKENS, width_text)],
        ),
        ExportTarget(
            "unet",
            UNetExport(model.unet).eval(),
            unet_inputs,
            [f32("model_output", batch, channels, h, w)],
        ),
        decoder_target("decoder", model, h, w),
    ]
    if with_encoder:
        targets.append(
            ExportTarget(
                "encoder",
                EncoderExport(model.vae).eval(),
                [f32("image", 1, config.vae.in_channels, height, width)],
                [f32("latent_mean", 1, config.vae.latent_channels, h, w)],
            )
        )
    if decoder_tile:
        t = decoder_tile // factor
        targets.append(decoder_target("decoder_tile", model, t, t))
    return targets


def release_after_conversion(targets: list[ExportTarget]) -> None:
    """Let each target free its module's weights once converted, except those a later target
    still uses (the encoder shares the VAE with the decoder). For a caller that discards the
    model after export (the CLI): a full-size UNet's 3-3.4 GB of torch weights are then gone
    before its ONNX graph is simplified and quantized. The modules are unusable afterwards."""
    for index, target in enumerate(targets):
        later = {id(t) for other in targets[index + 1 :] for t in module_tensors(other.module)}
        target.release = lambda module=target.module, keep=later: free_tensors(module, keep)


def module_tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def free_tensors(module: nn.Module, keep: set[int]) -> None:
    """Replace the storage of each parameter and buffer of `module` not in `keep` (ids) by an
    empty tensor, so the memory goes back to the allocator."""
    for tensor in module_tensors(module):
        if id(tensor) not in keep:
            tensor.data = torch.empty(0, dtype=tensor.dtype)


def decoder_target(name: str, model: StableDiffusion, h: int, w: int) -> ExportTarget:
    """The decoder at latent size h x w: latents [1, c, h, w] -> image [1, 3, f h, f w]."""
    vae, factor = model.config.vae, model.config.vae.downscale
    return ExportTarget(
        name,
        DecoderExport(model.vae).eval(),
        [TensorSpec("latents", [1, vae.latent_channels, h, w], "float32")],
        [TensorSpec("image", [1, vae.out_channels, factor * h, factor * w], "float32")],
    )
