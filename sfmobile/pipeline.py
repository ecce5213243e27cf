"""The reference runtime: tokenize -> encode -> the DDIM loop with classifier-free guidance ->
decode -> image, with a timing record. The phone reproduces this loop step for step.

Guidance follows diffusers' StableDiffusionPipeline: the unconditional embedding comes from the
negative prompt (empty by default), noise = uncond + w * (cond - uncond), and w <= 1 runs the
conditional branch alone. The UNet sees [uncond, cond] as one batch of 2 or as two calls of
batch 1 (`cfg_batch`), since phones differ on which is faster.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from sfmobile.backends.base import Backend
from sfmobile.errors import GenerationError, InputError
from sfmobile.noise import gaussian_noise
from sfmobile.scheduler import DdimScheduler
from sfmobile.tokenizer import ClipTokenizer


@dataclass
class Timings:
    """Seconds spent in each part of one generation (unet: one entry per UNet call)."""

    tokenize: float = 0.0
    text_encoder: float = 0.0
    unet: list[float] = field(default_factory=list)
    scheduler: float = 0.0
    decoder: float = 0.0
    total: float = 0.0
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "unet_total": sum(self.unet)}


@dataclass
class Generation:
    """image: RGB; latents: the final latents [1, 4, h, w] before decoding."""

    image: Image.Image
    latents: np.ndarray
    timings: Timings


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self.start = now - self.start, now
        return elapsed


def to_image(decoded: np.ndarray) -> Image.Image:
    """[1, 3, H, W] in [-1, 1] -> 8-bit RGB, rounded as diffusers does."""
    pixels = np.clip(decoded[0].transpose(1, 2, 0) / 2 + 0.5, 0.0, 1.0)
    return Image.fromarray((pixels * 255).round().astype(np.uint8))


def require_finite(values: np.ndarray, what: str) -> None:
    """Stop a generation whose model output holds NaN or inf (it would decode to a black image):
    one np.isfinite per call, cheap next to the model."""
    if not np.isfinite(values).all():
        raise GenerationError(f"{what} is not finite (NaN or inf); no image written")


class Pipeline:
    """Runs a model through any Backend. cfg_batch: 2 = [uncond, cond] in one UNet call,
    1 = two calls of batch 1."""

    def __init__(self, backend: Backend, cfg_batch: int = 2) -> None:
        if cfg_batch not in (1, 2):
            raise InputError(f"cfg_batch must be 1 or 2, got {cfg_batch}")
        self.backend = backend
        self.info = backend.info
        self.cfg_batch = cfg_batch
        if self.info.unet_batches and cfg_batch not in self.info.unet_batches:
            self.cfg_batch = self.info.unet_batches[0]
        if self.info.tokenizer is not None:
            self.tokenizer = self.info.tokenizer
        elif self.info.tokenizer_dir:
            self.tokenizer = ClipTokenizer.from_folder(self.info.tokenizer_dir)
        else:
            self.tokenizer = ClipTokenizer.default()
        self.scheduler = DdimScheduler(self.info.scheduler)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        factor = self.info.vae_downscale
        multiple = max(8, factor * self.info.latent_multiple)
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, int) or value < multiple or value % multiple:
                raise InputError(
                    f"{name} must be a positive multiple of {multiple} for this model, "
                    f"got {value!r}"
                )
        if self.info.image_size and (height, width) != self.info.image_size:
            raise InputError(
                f"height x width {height}x{width}: this bundle was exported for "
                f"{self.info.image_size[0]}x{self.info.image_size[1]}"
            )
        return (1, self.info.latent_channels, height // factor, width // factor)

    def initial_latents(
        self, seed: int, shape: tuple[int, ...], init_latents: np.ndarray | None
    ) -> np.ndarray:
        if init_latents is None:
            return gaussian_noise(seed, shape)
        if init_latents.shape != shape or init_latents.dtype != np.float32:
            raise InputError(
                f"init_latents must be float32 of shape {list(shape)}, "
                f"got {init_latents.dtype} {list(init_latents.shape)}"
            )
        if not np.isfinite(init_latents).all():
            bad = int(np.size(init_latents) - np.isfinite(init_latents).sum())
            raise InputError(f"init_latents hold {bad} values that are NaN or inf")
        return init_latents

    def generate(
        self,
        prompt: str,
        negative_prompt: str = "",
        steps: int = 8,
        guidance_scale: float = 7.5,
        seed: int = 0,
        height: int = 512,
        width: int = 512,
        init_latents: np.ndarray | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> Generation:
        """One image. on_step(done, total) is called after every denoising step."""
        for name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if not isinstance(value, str):
                raise InputError(f"{name} must be text, got {type(value).__name__}")
        if not isinstance(steps, int) or steps < 1:
            raise InputError(f"steps must be an integer >= 1, got {steps!r}")
        if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
            raise InputError(f"guidance must be a number, got {guidance_scale!r}")
        if not math.isfinite(guidance_scale):
            raise InputError(f"guidance must be a finite number, got {guidance_scale}")
        shape = self.latent_shape(height, width)
        timings, total, watch = Timings(), Stopwatch(), Stopwatch()
        latents = self.initial_latents(seed, shape, init_latents)

        guided_model = self.info.guidance_input
        use_cfg = guidance_scale > 1.0 and not guided_model
        prompts = [negative_prompt, prompt] if use_cfg else [prompt]
        ids = np.array([self.tokenizer.encode(p) for p in prompts], dtype=np.int32)
        timings.tokenize = watch.lap()
        text = np.concatenate([self.backend.encode_text(row[None]) for row in ids])
        require_finite(text, "text_encoder output")
        timings.text_encoder = watch.lap()

        timesteps = self.scheduler.timesteps(steps)
        for index, t in enumerate(timesteps):
            noise = self._predict(latents, float(t), text, use_cfg, guidance_scale, timings)
            require_finite(noise, f"unet output at step {index + 1}/{len(timesteps)} (t={t})")
            watch.lap()
            latents = self.scheduler.step(noise, int(t), latents, num_steps=steps)
            latents = latents.astype(np.float32)
            timings.scheduler += watch.lap()
            if on_step:
                on_step(index + 1, len(timesteps))

        decoded = self.backend.decode(latents / np.float32(self.info.scaling_factor))
        require_finite(decoded, "decoder output")
        timings.decoder = watch.lap()
        image = to_image(decoded)
        timings.total = total.lap()
        timings.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return Generation(image=image, latents=latents, timings=timings)

    def _predict(
        self,
        latents: np.ndarray,
        t: float,
        text: np.ndarray,
        use_cfg: bool,
        guidance_scale: float,
        timings: Timings,
    ) -> np.ndarray:
        """The UNet's (guided) prediction for one step."""
        watch = Stopwatch()
        guidance = guidance_scale if self.info.guidance_input else None
        if not use_cfg:
            output = self.backend.predict(latents, t, text, guidance)
            timings.unet.append(watch.lap())
            return output
        if self.cfg_batch == 2:
            both = self.backend.predict(np.concatenate([latents, latents]), t, text)
            timings.unet.append(watch.lap())
            uncond, cond = both[:1], both[1:]
        else:
            uncond = self.backend.predict(latents, t, text[:1])
            timings.unet.append(watch.lap())
            cond = self.backend.predict(latents, t, text[1:])
            timings.unet.append(watch.lap())
        return uncond + np.float32(guidance_scale) * (cond - uncond)
