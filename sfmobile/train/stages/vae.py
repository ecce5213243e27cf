"""Stage 1: an SD-1.x-design autoencoder (8x down-sampling, 4 latent channels) for the scenes.

Loss per batch, images x in [-1, 1], reconstruction x^ decoded from a sampled latent:
    mean|x - x^| + mean (x - x^)^2 + kl_weight * KL / P
KL is the Gaussian posterior's KL to N(0, 1) summed over one image's latent, P the number of
pixel values of one image (3 * S * S). That is latent-diffusion's weighting (reconstruction summed
over pixels, KL over the latent, weight 1e-6) divided through by P, so KL_WEIGHT = 1e-6 means what
SD's autoencoder config means: the KL only keeps the latent from drifting, the encoder ends up
near-deterministic. SD's perceptual (LPIPS) and adversarial terms are left out: flat synthetic
shapes need neither, and both cost more than the whole CPU budget.

finish() measures the latent scaling factor as SD's 0.18215 was chosen, 1 / std of the latent
means of SCALE_IMAGES training scenes, and writes out/vae/ (config.json + vae.safetensors).

Decoder fine-tuning (init + freeze_encoder), as Stability's sd-vae-ft-mse did for SD: the encoder,
and so every latent and the UNet trained on them, stays as it is; only the decoder learns to draw
those latents better. The scaling factor is then the init's, unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from sfmobile.config import VAEConfig
from sfmobile.errors import CheckpointError, InputError
from sfmobile.models.vae import AutoencoderKL
from sfmobile.staged_folder import staged_folder
from sfmobile.train.scenes.generator import SceneGenerator
from sfmobile.weights.fingerprint import weights_fingerprint
from sfmobile.weights.safe_io import read_json, read_tensors
from sfmobile.weights.strict import load_strict

KL_WEIGHT = 1e-6
SCALE_IMAGES = 256
VAE_FOLDER = "vae"
VAE_FORMAT = "sfmobile-vae"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "vae.safetensors"


class VaeReconstruction(nn.Module):
    """The training forward pass as one module, so DistributedDataParallel sees it as forward().

    images [B, 3, S, S] -> (reconstruction [B, 3, S, S], mean, logvar [B, 4, S/8, S/8]).
    """

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, logvar = self.vae.moments(images)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        latents = mean + torch.exp(0.5 * logvar) * noise
        return self.vae.decode(latents), mean, logvar


class VaeStage:
    """Trains a fresh AutoencoderKL of `config` (initialised from `seed`), or continues `init`;
    freeze_encoder (needs init) trains the decoder alone."""

    name = "vae"

    def __init__(
        self,
        config: VAEConfig,
        seed: int = 0,
        data_seed: int = 0,
        image_size: int = 64,
        kl_weight: float = KL_WEIGHT,
        init: AutoencoderKL | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        if freeze_encoder and init is None:
            raise InputError(
                "freeze_encoder (--freeze-encoder) needs init (--init): the trained VAE whose "
                "decoder is fine-tuned"
            )
        torch.manual_seed(seed)
        self.vae = AutoencoderKL(config if init is None else init.config)
        self.continues = None
        if init is not None:
            self.vae.load_state_dict(init.state_dict())
            self.continues = weights_fingerprint({"vae": self.vae})
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.vae.encoder.requires_grad_(False)
        self.model = VaeReconstruction(self.vae)
        self.data_seed, self.image_size, self.kl_weight = data_seed, image_size, kl_weight

    def trainable(self) -> dict[str, nn.Module]:
        return {"vae": self.model}

    def frozen(self) -> dict[str, nn.Module]:
        return {}

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: dict,
        step: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        images = batch["image"]
        reconstruction, mean, logvar = models["vae"](images, generator)
        error = reconstruction - images
        l1, mse = error.abs().mean(), error.square().mean()
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).flatten(1).sum(1).mean()
        loss = l1 + mse + self.kl_weight * kl / images[0].numel()
        psnr = 10.0 * math.log10(4.0 / max(mse.item(), 1e-12))  # peak-to-peak range 2
        return loss, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item(), "psnr": psnr}

    def finish(self, out_dir: Path) -> None:
        self.vae.eval()
        if not self.freeze_encoder:
            factor = latent_scaling_factor(self.vae, self.data_seed, self.image_size)
            self.vae.config = replace(self.vae.config, scaling_factor=factor)
        save_vae(self.vae, Path(out_dir) / VAE_FOLDER)


@torch.no_grad()
def latent_scaling_factor(
    vae: AutoencoderKL, data_seed: int, image_size: int, count: int = SCALE_IMAGES
) -> float:
    """1 / std of the latent means of training scenes 0..count-1 (scaled latents: std 1)."""
    scenes = SceneGenerator("train", seed=data_seed, size=image_size)
    means = []
    for start in range(0, count, 32):
        images = [scenes[i].model_input() for i in range(start, min(start + 32, count))]
        means.append(vae.encode(torch.from_numpy(np.stack(images))))
    return 1.0 / float(torch.cat(means).std())


def save_vae(vae: AutoencoderKL, folder: Path) -> None:
    """folder/config.json ({"format", "format_version", "vae": VAEConfig}) and
    folder/vae.safetensors (AutoencoderKL state, our names), replaced atomically."""
    with staged_folder(Path(folder)) as staging:
        tensors = {k: v.contiguous() for k, v in vae.state_dict().items()}
        save_file(tensors, str(staging / WEIGHTS_FILE))
        meta = {"format": VAE_FORMAT, "format_version": 1, "vae": vae.config.to_dict()}
        (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load_vae(path: Path) -> AutoencoderKL:
    """The VAE a VaeStage wrote: `path` is its --out folder or the vae/ folder inside it."""
    path = Path(path)
    folder = path / VAE_FOLDER if (path / VAE_FOLDER / CONFIG_FILE).is_file() else path
    if not (folder / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{path}: no trained VAE here (expected {CONFIG_FILE} in it or in {VAE_FOLDER}/; "
            "run `sfmobile train vae` first)"
        )
    meta = read_json(folder / CONFIG_FILE)
    if meta.get("format") != VAE_FORMAT or meta.get("format_version") != 1:
        raise CheckpointError(f"{folder / CONFIG_FILE}: not an sfmobile VAE (format version 1)")
    vae = AutoencoderKL(VAEConfig.from_dict(meta["vae"]))
    load_strict(vae, read_tensors(folder / WEIGHTS_FILE), str(folder / WEIGHTS_FILE))
    return vae.eval()
