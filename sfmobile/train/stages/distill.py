"""Stage 3: SnapFusion's CFG-aware step distillation, and a guidance-conditioned variant.

The student (initialised from the teacher) learns to make in ONE DDIM step what the frozen
teacher makes in k = teacher_steps / student_steps steps. One training step, per batch:

    z0 = vae.encode(images) * scaling_factor;  captions -> "" with probability caption_dropout
    t = a student timestep (uniform over the student's trailing grid), t'' = the next one
    z_t = alpha_t z0 + sigma_t eps
    teacher: k DDIM steps z_t -> ... -> z_t'' along its own (finer, nested) trailing grid
    x_target = the x0 that takes z_t to z_t'' in one DDIM step:
               (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - sigma_t'' alpha_t / sigma_t)
    student:  x_student = alpha_t z_t - sigma_t v_student(z_t)
    loss = mean max(alpha_t^2 / sigma_t^2, 1) (x_student - x_target)^2   (truncated SNR)
           + gamma * mean (v_student - (alpha_t eps - sigma_t z0))^2      (the ordinary loss)

CFG-aware (SnapFusion, with probability cfg_aware_prob per step): a scale w ~ U[2, 14] is drawn
per image and BOTH the teacher's steps and the student's output are classifier-free guided with
it before the x-space loss, so the student learns to be right where it will be used. Otherwise
both are conditional-only (the plain distillation loss).

Teachers: a v-prediction teacher, or an epsilon-prediction one (SD-1.5, as the paper's): the
student always predicts v (SnapFusion's choice: its x0 = alpha_t z_t - sigma_t v stays bounded at
t = 999, where an epsilon model's x0 = (z_t - sigma_t eps) / alpha_t divides by alpha_t = 0.068),
so an epsilon teacher's output is converted to the v it implies at (z, t) before it enters the
DDIM algebra: v = alpha_t eps - sigma_t x0(eps) (DdimScheduler.v_from_eps). Everything runs on one
scheduler, the student's: the teacher's noise schedule with v-prediction and trailing spacing
(so an SD-1.5 teacher's leading grid does not matter: the teacher steps along the student's
nested trailing grids). A student copied from an epsilon teacher starts out predicting eps where
v is asked for; the v loss (gamma) and the x-space loss retrain its output parametrisation.

Data: the synthetic scenes by default, or `--data` / `--cache` (real_data.RealData).

Guidance-conditioned (Meng et al., "On Distillation of Guided Diffusion Models"): the student's
UNet gets the guidance scale as an extra embedding (UNetConfig.guidance_embedding, initialised to
add zero) and learns the teacher's guided step in a single call, w ~ U[1, 14] every step: half the
UNet calls of a CFG student at sampling time. The ordinary v loss (gamma) is left out for it,
since its target is only the right answer at w = 1.

finish() writes out/student/, an sfmobile checkpoint whose scheduler samples student_steps steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from sfmobile.config import ModelConfig
from sfmobile.errors import ConfigError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.models.unet import UNet
from sfmobile.scheduler import DdimScheduler, SchedulerConfig
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.train.sampling import guided_output
from sfmobile.train.stages.real_data import RealData, conditioning
from sfmobile.weights.sfmobile_checkpoint import save_checkpoint

STUDENT_FOLDER = "student"


@dataclass(frozen=True)
class DistillConfig:
    """student_steps: the student's sampling steps; teacher_steps: the teacher's (a multiple);
    cfg_aware_prob: share of steps with the CFG-aware loss; guidance_range: the w drawn for it
    (the guidance-conditioned student draws from [1, guidance_range[1]]); gamma: weight of the
    ordinary v loss; default_guidance: what the student's checkpoint suggests to `generate`."""

    student_steps: int
    teacher_steps: int
    cfg_aware_prob: float = 0.5
    guidance_range: tuple[float, float] = (2.0, 14.0)
    gamma: float = 0.1
    caption_dropout: float = 0.1
    guidance_conditioned: bool = False
    default_guidance: float = 4.5

    def trained_guidance(self) -> tuple[float, float]:
        """The guidance scales the student is distilled for, recorded in its checkpoint and
        bundle: the guidance-conditioned student draws w from [1, high]; the CFG-aware one is
        guided with w from guidance_range (its unguided share also trains w = 1, yet its
        images at guidance 1 came out broken in the review, so only the guided range counts);
        with cfg_aware_prob 0 the student only ever learns the unguided step: [1, 1]."""
        low, high = self.guidance_range
        if self.guidance_conditioned:
            return 1.0, high
        return (low, high) if self.cfg_aware_prob > 0 else (1.0, 1.0)

    def __post_init__(self) -> None:
        if self.student_steps < 1 or self.teacher_steps < 2 * self.student_steps:
            raise ConfigError(
                f"teacher_steps ({self.teacher_steps}) must be at least twice student_steps "
                f"({self.student_steps})"
            )
        if self.teacher_steps % self.student_steps:
            raise ConfigError(
                f"teacher_steps ({self.teacher_steps}) must be a multiple of student_steps "
                f"({self.student_steps}) so the teacher's grid lands on the student's"
            )
        if not 0.0 <= self.cfg_aware_prob <= 1.0:
            raise ConfigError(f"cfg_aware_prob must be in [0, 1], got {self.cfg_aware_prob}")
        low, high = self.guidance_range
        if not 1.0 <= low <= high:
            raise ConfigError(f"guidance_range must satisfy 1 <= low <= high, got {low}, {high}")
        if self.gamma < 0:
            raise ConfigError(f"gamma must be >= 0, got {self.gamma}")


def student_unet(teacher: UNet, guidance_conditioned: bool, seed: int) -> UNet:
    """A copy of the teacher's UNet; with a guidance embedding whose output starts at zero, so
    the student begins exactly where the teacher's conditional prediction is."""
    torch.manual_seed(seed)
    config = replace(teacher.config, guidance_embedding=guidance_conditioned)
    student = UNet(config)
    missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
    if unexpected or any(not key.startswith("guidance_embed.") for key in missing):
        raise ConfigError(f"student and teacher UNets differ: {missing[:3]} {unexpected[:3]}")
    if student.guidance_embed is not None:
        nn.init.zeros_(student.guidance_embed.linear_2.weight)
        nn.init.zeros_(student.guidance_embed.linear_2.bias)
    return student


def student_scheduler(teacher: SchedulerConfig) -> SchedulerConfig:
    """The one scheduler of distillation: the teacher's noise schedule, v-prediction, trailing
    spacing (every student grid starts at t = 999 and the teacher's finer grids nest in it)."""
    return replace(teacher, prediction_type="v_prediction", timestep_spacing="trailing")


def teacher_chains(scheduler: DdimScheduler, config: DistillConfig) -> list[list[int]]:
    """For each student timestep t (in sampling order): [t, t', ..., t''], where t'' is where the
    student's DDIM step from t lands at sampling time (scheduler.prev_timestep; -1 for the
    final step) and t', ... are the k - 1 points of the teacher's grid strictly between.

    Each link is an exact DDIM step between its two timesteps. (diffusers' sampler steps to
    t - 1000 // n, which with trailing spacing can sit one timestep off the next grid point;
    the student's own landing point is kept exact, the teacher's intermediate points are the
    grid's.) Grids that do not interleave this way are refused."""
    teacher_grid = [int(t) for t in scheduler.timesteps(config.teacher_steps)]
    k = config.teacher_steps // config.student_steps
    chains = []
    for t in (int(t) for t in scheduler.timesteps(config.student_steps)):
        t_next = max(int(scheduler.prev_timestep(t, config.student_steps)), -1)
        between = [g for g in teacher_grid if t_next < g < t]
        if t not in teacher_grid or len(between) != k - 1:
            raise ConfigError(
                f"the {config.teacher_steps}-step teacher grid does not nest in the "
                f"{config.student_steps}-step student grid at t={t} (spacing "
                f"{scheduler.config.timestep_spacing!r}; use trailing)"
            )
        chains.append([t, *between, t_next])
    return chains


class DistillStage:
    """Distils `teacher` (frozen, with its text encoder and VAE) into a fresh copy of its UNet."""

    name = "distill"

    def __init__(
        self,
        teacher: StableDiffusion,
        config: DistillConfig,
        seed: int = 0,
        data: RealData | None = None,
    ) -> None:
        """data: the user's images (or cached latents) instead of the synthetic scenes."""
        if teacher.config.unet.guidance_embedding:
            raise ConfigError(f"{teacher.source}: the teacher must be a classifier-free model")
        self.teacher = teacher.eval()
        self.config = config
        self.student = student_unet(teacher.unet, config.guidance_conditioned, seed)
        self.teacher_predicts = teacher.scheduler.prediction_type
        self.scheduler = DdimScheduler(student_scheduler(teacher.scheduler))
        self.chains = torch.tensor(teacher_chains(self.scheduler, config))  # [S, k + 1]
        self.tokenizer = ClipTokenizer.of_model(teacher.tokenizer_dir)
        self.data = data
        self.run_settings = data.run_settings() if data is not None else {}
        if data is not None:  # the Trainer reads a stage's own batches when it has them
            self.batches = data.batches

    def trainable(self) -> dict[str, nn.Module]:
        return {"unet": self.student}

    def frozen(self) -> dict[str, nn.Module]:
        return {
            "teacher_unet": self.teacher.unet,
            "text_encoder": self.teacher.text_encoder,
            "vae": self.teacher.vae,
        }

    def loss(
        self,
        models: Mapping[str, nn.Module],
        batch: dict,
        step: int,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        config, scheduler = self.config, self.scheduler
        z0, cond, empty = conditioning(
            self.teacher, self.tokenizer, batch, config.caption_dropout, generator
        )
        size = z0.shape[0]
        uncond = empty.expand(size, -1, -1)
        chains = self.chains[torch.randint(0, len(self.chains), (size,), generator=generator)]
        t, t_next = chains[:, 0], chains[:, -1]
        eps = torch.randn(z0.shape, generator=generator)
        z_t = scheduler.add_noise(z0, eps, t)

        guided = config.guidance_conditioned or (
            torch.rand((), generator=generator).item() < config.cfg_aware_prob
        )
        low = 1.0 if config.guidance_conditioned else config.guidance_range[0]
        w = torch.empty(size).uniform_(low, config.guidance_range[1], generator=generator)
        if not guided:
            w = torch.ones(size)

        with torch.no_grad():
            z_target = self._teacher_steps(z_t, chains, cond, uncond, w, guided)
            x_target = self._one_step_x0(z_t, z_target, t, t_next)

        student = models["unet"]
        if config.guidance_conditioned:
            v_student = student(z_t, t.float(), cond, w)
            v_cond = None
        elif guided:
            both = student(
                torch.cat([z_t, z_t]), torch.cat([t, t]).float(), torch.cat([uncond, cond])
            )
            v_uncond, v_cond = both.chunk(2)
            v_student = v_uncond + _rows(w, z_t) * (v_cond - v_uncond)
        else:
            v_student = v_cond = student(z_t, t.float(), cond)

        alpha, sigma = scheduler.alpha_sigma(t)
        weight = torch.clamp(alpha**2 / sigma**2, min=1.0)
        x_student = scheduler.x0_from_v(z_t, v_student, t)
        x_loss = (weight * ((x_student - x_target) ** 2).mean(dim=(1, 2, 3))).mean()
        loss = x_loss
        metrics = {"x_loss": x_loss.item(), "cfg_aware": float(guided)}
        if v_cond is not None and config.gamma > 0:
            v_loss = ((v_cond - scheduler.velocity(z0, eps, t)) ** 2).mean()
            loss = loss + config.gamma * v_loss
            metrics["v_loss"] = v_loss.item()
        return loss, metrics

    def _teacher_steps(
        self,
        z_t: torch.Tensor,
        chains: torch.Tensor,
        cond: torch.Tensor,
        uncond: torch.Tensor,
        w: torch.Tensor,
        guided: bool,
    ) -> torch.Tensor:
        """The teacher's k DDIM steps along each row's chain, guided by w when `guided`."""
        z = z_t
        for j in range(chains.shape[1] - 1):
            t, t_prev = chains[:, j], chains[:, j + 1]
            if guided:
                out = guided_output(self.teacher.unet, z, t.float(), cond, uncond, w)
            else:
                out = self.teacher.unet(z, t.float(), cond)
            v = self.teacher_v(z, out, t)
            x0, eps = self.scheduler.x0_eps_from_output(z, v, t)
            z = self.scheduler.ddim_step_to(z, x0, eps, t, t_prev)
        return z

    def teacher_v(self, z: torch.Tensor, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The teacher's (guided) output at (z, t) as the v-prediction the student makes: as is
        from a v teacher, v = alpha_t eps - sigma_t x0(eps) from an epsilon teacher. (Guidance
        commutes with the conversion: v is affine in eps with weights summing to one.)"""
        if self.teacher_predicts == "epsilon":
            return self.scheduler.v_from_eps(z, out, t)
        return out

    def _one_step_x0(
        self, z_t: torch.Tensor, z_target: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor
    ) -> torch.Tensor:
        """The x0 prediction with which one DDIM step from (z_t, t) lands on z_target at t_next."""
        alpha, sigma = self.scheduler.alpha_sigma(t)
        alpha_next, sigma_next = self.scheduler.alpha_sigma(t_next, allow_final=True)
        ratio = sigma_next / sigma
        return (z_target - _rows(ratio, z_t) * z_t) / _rows(alpha_next - ratio * alpha, z_t)

    def model(self) -> StableDiffusion:
        """The student as the pipeline loads it: the teacher's text encoder and VAE."""
        teacher = self.teacher
        config = ModelConfig(
            unet=self.student.config,
            text_encoder=teacher.config.text_encoder,
            vae=teacher.config.vae,
        )
        scheduler = replace(
            self.scheduler.config,
            default_steps=self.config.student_steps,
            default_guidance=self.config.default_guidance,
        )
        return StableDiffusion(
            config=config,
            unet=self.student,
            text_encoder=teacher.text_encoder,
            vae=teacher.vae,
            scheduler=scheduler,
            tokenizer_dir=teacher.tokenizer_dir,
            source="sfmobile distill",
            guidance_range=self.config.trained_guidance(),
        )

    def finish(self, out_dir: Path) -> None:
        save_checkpoint(self.model(), Path(out_dir) / STUDENT_FOLDER)


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[B] -> [B, 1, 1, 1] to broadcast against like."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))
