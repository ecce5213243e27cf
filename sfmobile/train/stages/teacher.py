"""Stage 2: the teacher, a text encoder and UNet trained together from scratch as a v-prediction
diffusion model over the frozen VAE's latents.

One step, per batch of captioned scenes:
    z0 = vae.encode(images) * scaling_factor          (the latent mean: frozen, deterministic)
    captions -> "" with probability caption_dropout    (so the model learns the unconditional
                                                        prediction classifier-free guidance needs)
    t ~ uniform {0, ..., 999}, eps ~ N(0, 1), z_t = alpha_t z0 + sigma_t eps
    loss = mean (unet(z_t, t, text_encoder(tokens)) - v)^2,  v = alpha_t eps - sigma_t z0
with SD-1.x's scaled-linear betas. Sampling uses trailing timestep spacing (docs/training.md):
the first step is t = 999, the noisiest the schedule has, at any step count.

finish() writes out/teacher/, a full sfmobile checkpoint (`sfmobile generate --model`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sfmobile.config import ModelConfig, TextEncoderConfig, UNetConfig, check_unet_fits
from sfmobile.errors import ConfigError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.text_encoder import TextEncoder
from sfmobile.models.unet import UNet
from sfmobile.models.vae import AutoencoderKL
from sfmobile.scheduler import DdimScheduler, SchedulerConfig
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.weights.fingerprint import weights_fingerprint
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

CAPTION_DROPOUT = 0.1
TEACHER_FOLDER = "teacher"
TEACHER_STEPS = 32
TEACHER_GUIDANCE = 5.0  # a starting point for `generate`; not tuned yet (evaluation is later work)


def teacher_scheduler() -> SchedulerConfig:
    """SD-1.x's noise schedule, v-prediction, trailing spacing, 32 sampling steps by default."""
    return SchedulerConfig(
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        default_steps=TEACHER_STEPS,
        default_guidance=TEACHER_GUIDANCE,
    )


class TeacherStage:
    """Trains a fresh UNet + text encoder (initialised from `seed`) on the frozen `vae`."""

    name = "teacher"

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNetConfig,
        text_encoder: TextEncoderConfig,
        seed: int = 0,
        caption_dropout: float = CAPTION_DROPOUT,
        scheduler: SchedulerConfig | None = None,
        init: StableDiffusion | None = None,
    ) -> None:
        """init: a trained teacher to continue (its UNet and text encoder, whose configs then
        replace `unet` and `text_encoder`; its scheduler unless `scheduler` is given; its
        tokenizer) under a fresh learning-rate schedule."""
        if init is not None:
            unet, text_encoder = init.config.unet, init.config.text_encoder
            scheduler = scheduler or init.scheduler
        check_unet_fits(unet, text_encoder.width, vae.config.latent_channels)
        if not 0.0 <= caption_dropout <= 1.0:
            raise ConfigError(f"caption_dropout must be in [0, 1], got {caption_dropout}")
        torch.manual_seed(seed)
        self.unet = UNet(unet)
        self.text_encoder = TextEncoder(text_encoder)
        self.continues = None
        if init is not None:
            self.unet.load_state_dict(init.unet.state_dict())
            self.text_encoder.load_state_dict(init.text_encoder.state_dict())
            self.continues = weights_fingerprint(
                {"unet": self.unet, "text_encoder": self.text_encoder}
            )
        self.vae = vae
        self.caption_dropout = caption_dropout
        self.scheduler_config = scheduler or teacher_scheduler()
        self.scheduler = DdimScheduler(self.scheduler_config)
        self.tokenizer_dir = init.tokenizer_dir if init is not None else None
        self.tokenizer = ClipTokenizer.of_model(self.tokenizer_dir)

    def trainable(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "text_encoder": self.text_encoder}

    def frozen(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: dict,
        step: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            latents = self.vae.encode(batch["image"]) * self.vae.config.scaling_factor
        size = latents.shape[0]
        dropped = (torch.rand(size, generator=generator) < self.caption_dropout).tolist()
        captions = [
            "" if drop else caption for drop, caption in zip(dropped, batch["caption"], strict=True)
        ]
        token_ids = torch.tensor(self.tokenizer.encode_batch(captions), dtype=torch.int64)
        timesteps = torch.randint(
            0, self.scheduler_config.num_train_timesteps, (size,), generator=generator
        )
        noise = torch.randn(latents.shape, generator=generator)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        target = self.scheduler.velocity(latents, noise, timesteps)
        text = models["text_encoder"](token_ids)
        prediction = models["unet"](noisy, timesteps.float(), text)
        loss = F.mse_loss(prediction, target)
        return loss, {"v_mse": loss.item()}

    def model(self) -> StableDiffusion:
        """The teacher as the pipeline loads it (the tokenizer it was trained with)."""
        config = ModelConfig(
            unet=self.unet.config, text_encoder=self.text_encoder.config, vae=self.vae.config
        )
        return StableDiffusion(
            config=config,
            unet=self.unet,
            text_encoder=self.text_encoder,
            vae=self.vae,
            scheduler=self.scheduler_config,
            tokenizer_dir=self.tokenizer_dir,
            source="sfmobile train teacher",
        )

    def finish(self, out_dir: Path) -> None:
        save_checkpoint(self.model(), Path(out_dir) / TEACHER_FOLDER)
