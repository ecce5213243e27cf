"""Batched PyTorch sampling for training and evaluation: the pipeline's DDIM loop, many prompts
at once.

The reference runtime (pipeline.py) generates one prompt at a time through a Backend, as a phone
does. Distillation needs guided teacher steps inside a training step, decoder compression needs
teacher-generated latents, and evaluation samples hundreds of prompts; all of them use these
functions, which follow pipeline.py step for step (same Philox noise per seed, same guidance
formula, same scheduler, same tokenizer) on a whole batch; tests/test_sampling.py holds them to
the same latents.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.noise import gaussian_noise
from sfmobile.scheduler import DdimScheduler
from sfmobile.tokenizer import ClipTokenizer


def encode_captions(
    text_encoder: nn.Module, tokenizer: ClipTokenizer, captions: Sequence[str]
) -> torch.Tensor:
    """Text embeddings [B, 77, D] of the captions (on the text encoder's device)."""
    device = next(text_encoder.parameters()).device
    ids = torch.tensor(tokenizer.encode_batch(list(captions)), dtype=torch.int64, device=device)
    return text_encoder(ids)


def guided_output(
    unet: nn.Module,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance: torch.Tensor,
) -> torch.Tensor:
    """The UNet output classifier-free guidance makes, per row: uncond + w (cond - uncond).

    timestep and guidance are [B]. A guidance-conditioned UNet (config.guidance_embedding) takes
    w as an input and is called once on the conditional branch; otherwise rows are guided as
    diffusers does, in one call on a batch of 2B (rows with w = 1 come out as the conditional
    output up to rounding).
    """
    if getattr(_config(unet), "guidance_embedding", False):
        return unet(latents, timestep, cond, guidance)
    both = unet(
        torch.cat([latents, latents]), torch.cat([timestep, timestep]), torch.cat([uncond, cond])
    )
    out_uncond, out_cond = both.chunk(2)
    w = guidance.reshape(-1, *([1] * (latents.ndim - 1)))
    return out_uncond + w * (out_cond - out_uncond)


def _config(unet: nn.Module):
    """The UNetConfig of a UNet, also through a DistributedDataParallel wrapper."""
    return getattr(unet, "config", None) or getattr(getattr(unet, "module", None), "config", None)


def initial_latents(seeds: Sequence[int], shape: tuple[int, int, int]) -> torch.Tensor:
    """The pipeline's starting noise for each seed (sfmobile.noise, portable): [B, *shape]."""
    return torch.from_numpy(np.stack([gaussian_noise(seed, (1, *shape))[0] for seed in seeds]))


@torch.no_grad()
def sample_latents(
    model: StableDiffusion,
    captions: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    latent_size: int,
    negative_prompt: str = "",
) -> torch.Tensor:
    """Final (scaled) latents for each caption, as Pipeline.generate would give them, computed
    on the UNet's device (and returned there)."""
    if len(captions) != len(seeds):
        raise ValueError(f"{len(captions)} captions but {len(seeds)} seeds")
    scheduler = DdimScheduler(model.scheduler)
    tokenizer = ClipTokenizer.of_model(model.tokenizer_dir)
    channels = model.config.unet.in_channels
    device = next(model.unet.parameters()).device
    latents = initial_latents(seeds, (channels, latent_size, latent_size)).to(device)
    cond = encode_captions(model.text_encoder, tokenizer, captions)
    uncond = encode_captions(model.text_encoder, tokenizer, [negative_prompt] * len(captions))
    scale = torch.full((len(captions),), float(guidance), device=device)
    use_cfg = guidance > 1.0 or model.config.unet.guidance_embedding
    for t in scheduler.timesteps(steps):
        timestep = torch.full((len(captions),), float(t), device=device)
        if use_cfg:
            output = guided_output(model.unet, latents, timestep, cond, uncond, scale)
        else:
            output = model.unet(latents, timestep, cond)
        latents = scheduler.step(output, int(t), latents, num_steps=steps)
    return latents


@torch.no_grad()
def decode_images(model: StableDiffusion, latents: torch.Tensor) -> np.ndarray:
    """uint8 images [B, H, W, 3] from scaled latents, rounded as the pipeline rounds them."""
    decoded = model.vae.decode(latents / model.config.vae.scaling_factor)
    return to_uint8(decoded)


def to_uint8(decoded: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3] (the pipeline's to_image, batched)."""
    from sfmobile.pipeline import to_image

    return np.stack([np.asarray(to_image(row[None].numpy())) for row in decoded])
