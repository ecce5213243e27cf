"""A small random diffusers StableDiffusionPipeline saved with save_pretrained: the reference
that loader, pipeline and export tests compare against. Each test picks the UNet and VAE
architecture; the CLIP text model, tokenizer files (our shipped vocabulary) and DDIM scheduler
are SD-1.x's at a tiny width."""

from __future__ import annotations

from pathlib import Path

from diffusers import StableDiffusionPipeline

from sfmobile.bench.diffusers_baseline import (
    assemble,
    sd_scheduler,
    sd_text_encoder,
    sd_tokenizer,
)


def save_reference_pipeline(
    folder: Path, unet, vae, prediction_type: str = "epsilon"
) -> StableDiffusionPipeline:
    """Builds the pipeline around `unet` and `vae` and saves it to folder/"model"."""
    text_encoder = sd_text_encoder(hidden_size=32, intermediate_size=64, layers=2, heads=4)
    tokenizer = sd_tokenizer(folder / "vocab")
    pipe = assemble(unet, vae, text_encoder, tokenizer, sd_scheduler(prediction_type))
    pipe.save_pretrained(folder / "model")
    return pipe
