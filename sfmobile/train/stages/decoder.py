"""Stage 4: SnapFusion's compressed decoder, a VAE decoder with half the channels of every layer
(VAEConfig.pruned(), about a quarter of the parameters and compute) trained to reproduce the full
decoder's images.

One step, batch of B:
    B/2 latents drawn from the pool of teacher-generated latents (latent_pool.py)
    B/2 latents of training images: vae.encode(image) * scaling_factor (the latent mean), of
        the synthetic scenes or of --data (or read from a --cache)
    loss = mean over the B rows of mean (pruned_decoder(z / sf) - full_decoder(z / sf))^2
The teacher's latents are what the decoder will decode in use; the encoded images keep it
faithful on the latent manifold the full decoder was trained on. With --data the pool's prompts
are the data's first captions and the held-out report's the next ones; with --buckets the
encoded half is one bucket's shape and the pool half square, decoded as two parts. The teacher
(UNet, text encoder, VAE) is frozen. Unlike SnapFusion, which distils with the full decoder's
images and the data's, only the full decoder is the target here: the goal is to ship its
images, cheaper.

The pruned decoder starts from the full one's leading channels (copy_leading_channels): every
tensor keeps its first out and in channels. In a short trial (demo VAE after 400 of its steps,
batch 8, lr 1e-3) it started at MSE 0.31 against a fresh decoder's 0.42 and after 60 steps was at
0.158 against 0.181; fresh needed 60 steps for what the copy reached in about 40. (Scaling the
copied weights up by the halved fan-in did not help.)

finish() writes out/decoder/: a whole VAE folder (the teacher's encoder, the pruned decoder;
stages/vae.load_vae reads it) and report.json (evaluation/decoder_report.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from sfmobile.errors import ConfigError, InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.vae import AutoencoderKL, Decoder
from sfmobile.train.engine import distributed
from sfmobile.train.evaluation.decoder_report import (
    HELDOUT_LATENTS,
    decoder_report,
    heldout_latents,
    print_report,
)
from sfmobile.train.stages.latent_pool import POOL_FILE, latent_pool
from sfmobile.train.stages.real_data import RealData
from sfmobile.train.stages.vae import save_vae

DECODER_FOLDER = "decoder"
REPORT_FILE = "report.json"
POOL_SIZE = 1024
REAL_FRACTION = 0.5
INITIALISATIONS = ("copy", "fresh")


def copy_leading_channels(full: nn.Module, pruned: nn.Module) -> None:
    """Fill every tensor of `pruned` with the leading slice of the same tensor of `full`
    (conv [out, in, k, k] -> [:out', :in'], norms and biases [:c'])."""
    source = full.state_dict()
    state = {}
    for key, target in pruned.state_dict().items():
        tensor = source.get(key)
        if (
            tensor is None
            or tensor.ndim != target.ndim
            or any(s < t for s, t in zip(tensor.shape, target.shape, strict=True))
        ):
            raise ConfigError(
                f"cannot initialise pruned decoder tensor {key} {tuple(target.shape)} from the "
                f"full decoder's {None if tensor is None else tuple(tensor.shape)}"
            )
        state[key] = tensor[tuple(slice(0, size) for size in target.shape)].clone()
    pruned.load_state_dict(state)


class DecodeParts(nn.Module):
    """Decodes several latent batches (shapes may differ) in ONE forward call, so that under
    torchrun DDP sees one forward per backward."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, *parts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.decoder(part) for part in parts)


def with_decoder(model: StableDiffusion, vae: AutoencoderKL) -> StableDiffusion:
    """`model` with its VAE replaced by `vae` (e.g. the pruned one) and its config updated.

    The UNet's latents must mean the same to the new VAE: same latent channels, scaling factor
    and up-sampling depth."""
    old, new = model.config.vae, vae.config
    for name in ("latent_channels", "scaling_factor"):
        if getattr(old, name) != getattr(new, name):
            raise ConfigError(
                f"VAE {name} {getattr(new, name)} does not match the model's {getattr(old, name)}"
            )
    if len(old.decoder_channels) != len(new.decoder_channels):
        raise ConfigError(
            f"VAE decoder has {len(new.decoder_channels)} levels, the model's "
            f"{len(old.decoder_channels)} (different up-sampling)"
        )
    config = dataclasses.replace(model.config, vae=new)
    return dataclasses.replace(model, config=config, vae=vae)


class DecoderStage:
    """Distils the teacher's VAE decoder into VAEConfig.pruned() (see the module docstring).

    Building it makes (or reads back) the latent pool in `out`, so build it with the Trainer's
    out folder."""

    name = "decoder"

    def __init__(
        self,
        teacher: StableDiffusion,
        out: Path,
        seed: int = 0,
        data_seed: int = 0,
        image_size: int = 64,
        pool_size: int = POOL_SIZE,
        real_fraction: float = REAL_FRACTION,
        init: str = "copy",
        heldout: int = HELDOUT_LATENTS,
        console: Console | None = None,
        data: RealData | None = None,
        device: str = "cpu",
    ) -> None:
        """data: the user's images (or cached latents) instead of the synthetic scenes; its
        image_size then replaces `image_size`. device: the run's --device, where the latent
        pool is generated (the Trainer later moves everything there too)."""
        if init not in INITIALISATIONS:
            raise InputError(f"init must be one of {INITIALISATIONS}, got {init!r}")
        if not 0.0 <= real_fraction <= 1.0:
            raise InputError(f"real_fraction must be in [0, 1], got {real_fraction}")
        if heldout < 1:
            raise InputError(f"heldout must be >= 1, got {heldout}")
        self.teacher = teacher.eval()
        self.vae = teacher.vae
        self.pruned_config = self.vae.config.pruned()
        torch.manual_seed(seed)
        self.decoder = Decoder(self.pruned_config)
        if init == "copy":
            copy_leading_channels(self.vae.decoder, self.decoder)
        self.parts = DecodeParts(self.decoder)
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.data = data
        self.run_settings = data.run_settings() if data is not None else {}
        self.pool_captions = self.heldout_captions = None
        if data is not None:
            image_size = data.image_size
            captions = data.captions(pool_size + heldout)
            self.pool_captions, self.heldout_captions = captions[:pool_size], captions[pool_size:]
            self.batches = data.batches  # the Trainer reads a stage's own batches
        self.image_size, self.data_seed = image_size, data_seed
        self.real_fraction, self.heldout = real_fraction, heldout
        self.latent_size = image_size // self.vae.config.downscale
        ranks = distributed.start(device)  # the Trainer's process group (NCCL on cuda)
        for module in (teacher.unet, teacher.text_encoder):
            module.to(ranks.device)
        self.pool = latent_pool(
            Path(out) / POOL_FILE,
            teacher,
            seed=seed,
            data_seed=data_seed,
            count=pool_size,
            latent_size=self.latent_size,
            console=self.console,
            write=ranks.is_main,
            captions=self.pool_captions,
        )

    def trainable(self) -> dict[str, nn.Module]:
        return {"decoder": self.parts}

    def frozen(self) -> dict[str, nn.Module]:
        return {
            "vae": self.vae,
            "unet": self.teacher.unet,
            "text_encoder": self.teacher.text_encoder,
        }

    def split(self, batch_size: int) -> tuple[int, int]:
        """(pool latents, encoded scenes) in a batch of batch_size."""
        real = round(batch_size * self.real_fraction)
        return batch_size - real, real

    def latents(self, batch: dict, generator: torch.Generator) -> list[torch.Tensor]:
        """Scaled latents of one step: [pool draws, the batch's first images encoded (or its
        cached latents)], leaving out an empty part."""
        size = len(batch["caption"])
        from_pool, real = self.split(size)
        picks = torch.randint(0, self.pool.shape[0], (from_pool,), generator=generator)
        if "latents" in batch:
            encoded = batch["latents"][:real]
        else:
            with torch.no_grad():
                encoded = self.vae.encode(batch["image"][:real]) * self.vae.config.scaling_factor
        return [part for part in (self.pool[picks], encoded) if part.shape[0]]

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: dict,
        step: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        parts = [z / self.vae.config.scaling_factor for z in self.latents(batch, generator)]
        with torch.no_grad():
            targets = [self.vae.decoder(part) for part in parts]
        predictions = models["decoder"](*parts)
        per_row = torch.cat(
            [
                (prediction - target).square().flatten(1).mean(1)
                for prediction, target in zip(predictions, targets, strict=True)
            ]
        )
        loss = per_row.mean()
        from_pool, _ = self.split(len(batch["caption"]))
        per_row = per_row.detach()
        metrics = {}
        if from_pool:
            metrics["pool_mse"] = per_row[:from_pool].mean().item()
        if from_pool < len(per_row):
            metrics["scene_mse"] = per_row[from_pool:].mean().item()
        return loss, metrics

    def pruned_vae(self) -> AutoencoderKL:
        """The whole VAE to ship: the teacher's encoder and the trained pruned decoder."""
        vae = AutoencoderKL(self.pruned_config)
        vae.encoder.load_state_dict(self.vae.encoder.state_dict())
        vae.decoder.load_state_dict(self.decoder.state_dict())
        return vae.eval()

    def finish(self, out_dir: Path) -> None:
        folder = Path(out_dir) / DECODER_FOLDER
        vae = self.pruned_vae()
        save_vae(vae, folder)
        latents = heldout_latents(
            self.teacher,
            self.heldout,
            self.data_seed,
            self.latent_size,
            self.console,
            self.heldout_captions,
        )
        report = decoder_report(self.teacher, vae, latents, self.image_size)
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        print_report(report, self.console)
