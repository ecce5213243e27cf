"""The PyTorch backend: the reference every exported bundle is verified against."""

from __future__ import annotations

import numpy as np
import torch

from sfmobile.backends.base import ModelInfo
from sfmobile.models.stable_diffusion import StableDiffusion


class TorchBackend:
    name = "torch"

    def __init__(self, model: StableDiffusion, attention_chunk: int | None = None) -> None:
        from sfmobile.models.layers import set_attention_slicing

        self.model = model.eval()
        set_attention_slicing(model.unet, attention_chunk)
        config = model.config
        self.info = ModelInfo(
            scheduler=model.scheduler,
            scaling_factor=config.vae.scaling_factor,
            latent_channels=config.unet.in_channels,
            vae_downscale=config.vae.downscale,
            text_width=config.text_encoder.width,
            tokenizer_dir=model.tokenizer_dir,
            guidance_input=config.unet.guidance_embedding,
            guidance_range=model.guidance_range,
            latent_multiple=2 ** sum(stage.resample for stage in config.unet.down),
        )

    @torch.inference_mode()
    def encode_text(self, token_ids: np.ndarray) -> np.ndarray:
        return self.model.text_encoder(torch.from_numpy(token_ids)).numpy()

    @torch.inference_mode()
    def predict(
        self,
        latents: np.ndarray,
        timestep: float,
        text: np.ndarray,
        guidance: float | None = None,
    ) -> np.ndarray:
        batch = latents.shape[0]
        timesteps = torch.full((batch,), float(timestep), dtype=torch.float32)
        scale = None if guidance is None else torch.full((batch,), float(guidance))
        output = self.model.unet(
            torch.from_numpy(latents), timesteps, torch.from_numpy(text), scale
        )
        return output.numpy()

    @torch.inference_mode()
    def decode(self, latents: np.ndarray) -> np.ndarray:
        return self.model.vae.decode(torch.from_numpy(latents)).numpy()

    def decode_tile(self, latents: np.ndarray) -> np.ndarray:
        """The decoder is convolutional: a tile decodes like a whole latent."""
        return self.decode(latents)

    @torch.inference_mode()
    def encode_image(self, image: np.ndarray) -> np.ndarray:
        return self.model.vae.encode(torch.from_numpy(image)).numpy()
