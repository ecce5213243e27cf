"""Give a trained model a better decoder without retraining its UNet.

A decoder fine-tuned with `sfmobile train vae --init RUN --freeze-encoder` draws the same latents
better; the UNet and the distilled students were trained on those latents, so they take it as
it is. swap_vae checks that promise (same encoder weights, same latent channels and scaling
factor) before writing the model with the new VAE.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sfmobile.errors import CheckpointError, ConfigError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.vae import AutoencoderKL
from sfmobile.train.stages.decoder import with_decoder
from sfmobile.weights.strict import first_difference


def check_same_encoder(model: StableDiffusion, vae: AutoencoderKL) -> None:
    """Raise ConfigError unless `vae` encodes images exactly as `model`'s VAE does."""
    difference = first_difference(model.vae.encoder, vae.encoder)
    if difference == "names differ":
        raise ConfigError("the VAE's encoder has another architecture than the model's")
    if difference is not None:
        raise ConfigError(
            f"encoder weight {difference} differs: the model's UNet was trained on its own "
            "encoder's latents; fine-tune the decoder alone (`sfmobile train vae --init RUN "
            "--freeze-encoder`)"
        )


def swap_vae(model: StableDiffusion, vae: AutoencoderKL, vae_source: str) -> StableDiffusion:
    """`model` decoding with `vae`, whose encoder must be `model`'s own."""
    try:
        check_same_encoder(model, vae)
        swapped = with_decoder(model, vae)
    except ConfigError as error:
        raise CheckpointError(
            f"--vae {vae_source} cannot replace the model's VAE: {error}"
        ) from error
    return replace(swapped, source=f"{model.source} with the VAE of {vae_source}")


def swap_vae_files(model_path: Path, vae_path: Path, out: Path) -> StableDiffusion:
    """Read both, swap, save the result as an sfmobile checkpoint in `out` (replaced)."""
    from sfmobile.train.stages.vae import load_vae
    from sfmobile.weights import load_model
    from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

    model = swap_vae(load_model(Path(model_path)), load_vae(Path(vae_path)), str(vae_path))
    save_checkpoint(model, Path(out))
    return model
