"""`sfmobile train unet`: the efficient UNet initialised from a real teacher (SD-1.5) and trained
on the user's image-caption data, SnapFusion's section 3.

The student is the preset's UNet with every block SD-1.5 also has copied from the teacher's UNet
(weights/snapfusion_init.py); the teacher's text encoder and VAE are frozen and shared. One step,
per batch:

    z0 = vae.encode(images) * scaling_factor        (or the cached latents of cache-latents)
    captions -> "" with probability caption_dropout  (for classifier-free guidance)
    t ~ uniform {0, ..., 999}, eps ~ N(0, 1), z_t = alpha_t z0 + sigma_t eps
    target = eps (epsilon teacher, SD-1.5) or alpha_t eps - sigma_t z0 (v-prediction teacher)
    loss = noise_weight * mean (student(z_t) - target)^2
         + distill_weight * mean (student(z_t) - teacher(z_t))^2   (teacher: same z_t, t, text)

With robust_skip_prob p > 0 (SnapFusion's robust training, stages/robust.py) each step skips
every transformer and channel-keeping ResNet of the student with probability p.

The student predicts what the teacher predicts, so its checkpoint takes the teacher's scheduler;
`sfmobile distill --teacher` then turns it into a few-step model. finish() writes OUT/unet/, an
sfmobile checkpoint (student UNet + the teacher's text encoder, VAE and tokenizer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sfmobile.config import UNetConfig, check_unet_fits
from sfmobile.errors import ConfigError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.scheduler import DdimScheduler
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.train.data.images import Buckets
from sfmobile.train.data.source import DataSpec
from sfmobile.train.stages.real_data import RealData, conditioning
from sfmobile.train.stages.robust import draw_skips, skippable_blocks, skipping
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint
from sfmobile.weights.snapfusion_init import init_from_sd15

UNET_FOLDER = "unet"


@dataclass(frozen=True)
class UnetTrainConfig:
    """noise_weight, distill_weight: the two loss terms (module docstring); data, cache,
    image_size, buckets: where the images come from (real_data.RealData)."""

    data: DataSpec | None = None
    cache: Path | None = None
    image_size: int = 512
    noise_weight: float = 1.0
    distill_weight: float = 1.0
    caption_dropout: float = 0.1
    robust_skip_prob: float = 0.0
    buckets: Buckets | None = None

    def __post_init__(self) -> None:
        self.source()  # checks data, cache, image_size and buckets
        if (
            self.noise_weight < 0
            or self.distill_weight < 0
            or not (self.noise_weight + self.distill_weight > 0)
        ):
            raise ConfigError(
                f"loss weights must be >= 0 and not both 0, got noise {self.noise_weight}, "
                f"distill {self.distill_weight}"
            )
        for name in ("caption_dropout", "robust_skip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def source(self) -> RealData:
        return RealData(self.data, self.cache, self.image_size, self.buckets)


class UnetStage:
    """Trains `student` (a UNetConfig) from `teacher` (a loaded StableDiffusion) on real data."""

    name = "unet"

    def __init__(
        self, teacher: StableDiffusion, student: UNetConfig, config: UnetTrainConfig, seed: int = 0
    ) -> None:
        t = teacher.config
        check_unet_fits(student, t.text_encoder.width, t.vae.latent_channels, "student")
        if teacher.scheduler.prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(
                f"teacher {teacher.source}: prediction type {teacher.scheduler.prediction_type!r}"
                " (expected epsilon or v_prediction)"
            )
        self.teacher, self.config = teacher.eval(), config
        self.unet, self.init_report = init_from_sd15(student, teacher.unet, seed)
        self.continues = None
        self.scheduler = DdimScheduler(teacher.scheduler)
        self.tokenizer = ClipTokenizer.of_model(teacher.tokenizer_dir)
        self.source = config.source()
        self.skippable = skippable_blocks(self.unet)
        self.skips_blocks = config.robust_skip_prob > 0  # the Trainer's DDP must allow it
        self.run_settings = self.source.run_settings()  # a resume must repeat them
        self.batches = self.source.batches  # the Trainer's data hook (stage.py)

    def trainable(self) -> dict[str, nn.Module]:
        return {"unet": self.unet}

    def frozen(self) -> dict[str, nn.Module]:
        t = self.teacher
        return {"teacher_unet": t.unet, "text_encoder": t.text_encoder, "vae": t.vae}

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: dict,
        step: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        latents, text, _ = conditioning(
            self.teacher, self.tokenizer, batch, self.config.caption_dropout, generator
        )
        size = latents.shape[0]
        timesteps = torch.randint(
            0, self.scheduler.config.num_train_timesteps, (size,), generator=generator
        )
        noise = torch.randn(latents.shape, generator=generator)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.scheduler.config.prediction_type == "v_prediction":
            target = self.scheduler.velocity(latents, noise, timesteps)
        else:
            target = noise
        with torch.no_grad():
            teacher_out = self.teacher.unet(noisy, timesteps.float(), text)
        skipped = draw_skips(self.skippable, self.config.robust_skip_prob, generator)
        with skipping(self.unet, skipped):
            student_out = models["unet"](noisy, timesteps.float(), text)
        task = F.mse_loss(student_out, target)
        distill = F.mse_loss(student_out, teacher_out)
        loss = self.config.noise_weight * task + self.config.distill_weight * distill
        metrics = {"task_mse": task.item(), "distill_mse": distill.item()}
        if self.skips_blocks:
            metrics["skipped_blocks"] = float(len(skipped))
        return loss, metrics

    def model(self) -> StableDiffusion:
        """The student with the teacher's text encoder, VAE, scheduler and tokenizer."""
        t = self.teacher
        return replace(
            t,
            config=replace(t.config, unet=self.unet.config),
            unet=self.unet,
            source=f"sfmobile train unet (teacher {t.source})",
            loras=[],
        )

    def finish(self, out_dir: Path) -> None:
        save_checkpoint(self.model(), Path(out_dir) / UNET_FOLDER)
