"""The reference runtime: tokenize -> encode -> the DDIM loop with classifier-free guidance ->
decode -> image, with a timing record. The phone reproduces this loop step for step.

Guidance follows diffusers' StableDiffusionPipeline: the unconditional embedding comes from the
negative prompt (empty by default), noise = uncond + w * (cond - uncond), and w <= 1 runs the
conditional branch alone. The UNet sees [uncond, cond] as one batch of 2 or as two calls of
batch 1 (`cfg_batch`), since phones differ on which is faster.

Image-to-image follows diffusers' StableDiffusionImg2ImgPipeline: `strength` keeps the last
int(steps * strength) of the text-to-image timesteps (its get_timesteps), the picture's latent
mean (scaled) is noised to the first of them with the seed's portable noise (its add_noise), and
the same loop runs from there. The encoder's mean, not a sample, makes it deterministic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from sfmobile.backends.base import Backend
from sfmobile.errors import GenerationError, InputError
from sfmobile.init_image import image_array
from sfmobile.noise import gaussian_noise
from sfmobile.peak_memory import PeakTracker
from sfmobile.scheduler import DdimScheduler
from sfmobile.tiled_decode import decode_tiled, default_overlap, tile_side
from sfmobile.tokenizer import ClipTokenizer


@dataclass
class Timings:
    """Seconds spent in each part of one generation (unet: one entry per UNet call; encoder:
    image-to-image only); peak_rss_mb: resident memory at its peak, whose peak_rss_scope says
    what it covers ("generation", "process" lifetime or "unknown": see peak_memory.py)."""

    encoder: float = 0.0
    tokenize: float = 0.0
    text_encoder: float = 0.0
    unet: list[float] = field(default_factory=list)
    scheduler: float = 0.0
    decoder: float = 0.0
    total: float = 0.0
    peak_rss_mb: float = 0.0
    peak_rss_scope: str = "unknown"

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


DEFAULT_STRENGTH = 0.8  # diffusers' StableDiffusionImg2ImgPipeline default


def img2img_start(steps: int, strength: float) -> int:
    """The index of the first of `steps` timesteps image-to-image runs (diffusers'
    get_timesteps: the last int(steps * strength) of them)."""
    if (
        isinstance(strength, bool)
        or not isinstance(strength, int | float)
        or not math.isfinite(strength)
        or not 0 < strength <= 1
    ):
        raise InputError(f"strength must be a finite number in (0, 1], got {strength!r}")
    run = min(int(steps * strength), steps)
    if run < 1:
        raise InputError(
            f"strength {strength} of {steps} steps runs no step: "
            f"use strength >= {1 / steps:.3g} or more steps"
        )
    return steps - run


def require_finite(values: np.ndarray, what: str) -> None:
    """Stop a generation whose model output holds NaN or inf (it would decode to a black image):
    one np.isfinite per call, cheap next to the model."""
    if not np.isfinite(values).all():
        raise GenerationError(f"{what} is not finite (NaN or inf); no image written")


def guidance_warning(
    guidance_scale: float, guidance_range: tuple[float, float] | None
) -> str | None:
    """A one-line warning when guidance_scale lies outside the range the model was distilled
    for (its images degrade there: a CFG-aware student at guidance 1 lost its background),
    None inside it or when the model records no range. The Kotlin core's GuidanceWarning.kt
    gives the same text (tests/golden/guidance/)."""
    if guidance_range is None:
        return None
    low, high = guidance_range
    if low <= guidance_scale <= high:
        return None
    return (
        f"guidance {guidance_scale:g} is outside the range this model was distilled for "
        f"[{low:g}, {high:g}]; expect degraded images"
    )


class Pipeline:
    """Runs a model through any Backend. cfg_batch: 2 = [uncond, cond] in one UNet call,
    1 = two calls of batch 1; None: the batch an exported bundle's UNet was built for (2 for a
    model without a static batch). A batch the bundle cannot run is refused, not changed.
    tile_decoder: decode in tiles (True; a bundle needs a tile decoder), whole (False), or in
    tiles when the bundle has a tile decoder (None; tiled_decode.py)."""

    def __init__(
        self, backend: Backend, cfg_batch: int | None = None, tile_decoder: bool | None = None
    ) -> None:
        self.backend = backend
        self.info = backend.info
        batches = self.info.unet_batches
        if cfg_batch is None:
            cfg_batch = batches[0] if batches else 2
        if cfg_batch not in (1, 2):
            raise InputError(f"--cfg-batch must be 1 or 2, got {cfg_batch}")
        if batches and cfg_batch not in batches and not self.info.guidance_input:
            takes = " or ".join(str(b) for b in batches)
            raise InputError(
                f"--cfg-batch {cfg_batch}: this bundle's UNet takes batch {takes} "
                f"(omit --cfg-batch, or export again with --cfg-batch {cfg_batch})"
            )
        self.cfg_batch = cfg_batch
        if tile_decoder:
            tile_side(self.info, (1 << 20, 1 << 20), True)  # refused now, not after the UNet
        self.tile_decoder = tile_decoder
        self.tokenizer = self.info.tokenizer or ClipTokenizer.of_model(self.info.tokenizer_dir)
        self.scheduler = DdimScheduler(self.info.scheduler)

    def guidance_warning(self, guidance_scale: float) -> str | None:
        """guidance_warning for this model's recorded range."""
        return guidance_warning(guidance_scale, self.info.guidance_range)

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
        init_image: Image.Image | np.ndarray | None = None,
        strength: float = DEFAULT_STRENGTH,
    ) -> Generation:
        """One image. on_step(done, total) is called after every denoising step.

        init_image (image-to-image): a PIL image (see init_image.py for its size policy) or
        float32 [1, 3, height, width] in [-1, 1]; strength in (0, 1]: how much of the schedule
        runs (1: all of it, from the picture noised to the first timestep)."""
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
        memory = PeakTracker()
        memory.start()
        timings, total, watch = Timings(), Stopwatch(), Stopwatch()
        timesteps = self.scheduler.timesteps(steps)
        if init_image is None:
            latents = self.initial_latents(seed, shape, init_latents)
        else:
            if init_latents is not None:
                raise InputError("init_latents and init_image: pass one, not both")
            timesteps = timesteps[img2img_start(steps, strength) :]
            latents = self.image_latents(init_image, seed, shape, int(timesteps[0]))
            timings.encoder = watch.lap()

        guided_model = self.info.guidance_input
        use_cfg = guidance_scale > 1.0 and not guided_model
        prompts = [negative_prompt, prompt] if use_cfg else [prompt]
        ids = np.array([self.tokenizer.encode(p) for p in prompts], dtype=np.int32)
        timings.tokenize = watch.lap()
        text = np.concatenate([self.backend.encode_text(row[None]) for row in ids])
        require_finite(text, "text_encoder output")
        timings.text_encoder = watch.lap()

        for index, t in enumerate(timesteps):
            noise = self._predict(latents, float(t), text, use_cfg, guidance_scale, timings)
            require_finite(noise, f"unet output at step {index + 1}/{len(timesteps)} (t={t})")
            watch.lap()
            latents = self.scheduler.step(noise, int(t), latents, num_steps=steps)
            latents = latents.astype(np.float32)
            timings.scheduler += watch.lap()
            if on_step:
                on_step(index + 1, len(timesteps))

        decoded = self.decode(latents / np.float32(self.info.scaling_factor))
        require_finite(decoded, "decoder output")
        timings.decoder = watch.lap()
        image = to_image(decoded)
        timings.total = total.lap()
        peak = memory.peak()
        timings.peak_rss_mb, timings.peak_rss_scope = round(peak.mb, 1), peak.scope
        return Generation(image=image, latents=latents, timings=timings)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """latents (divided by the scaling factor) -> image [1, 3, H, W], whole or in tiles."""
        tile = tile_side(self.info, latents.shape[2:], self.tile_decoder)
        if tile is None:
            return self.backend.decode(latents)
        overlap, factor = default_overlap(tile), self.info.vae_downscale
        return decode_tiled(latents, self.backend.decode_tile, tile, overlap, factor)

    def image_latents(
        self, image: Image.Image | np.ndarray, seed: int, shape: tuple[int, ...], t: int
    ) -> np.ndarray:
        """The picture's scaled latent mean noised to timestep t with the seed's noise."""
        height, width = shape[2] * self.info.vae_downscale, shape[3] * self.info.vae_downscale
        pixels = image if isinstance(image, np.ndarray) else image_array(image, height, width)
        if pixels.shape != (1, 3, height, width) or pixels.dtype != np.float32:
            raise InputError(
                f"init_image must be float32 of shape [1, 3, {height}, {width}], "
                f"got {pixels.dtype} {list(pixels.shape)}"
            )
        if not np.isfinite(pixels).all():
            raise InputError("init_image holds NaN or infinite values")
        mean = self.backend.encode_image(pixels)
        require_finite(mean, "encoder output")
        x0 = (mean * np.float32(self.info.scaling_factor)).astype(np.float32)
        noise = gaussian_noise(seed, shape)
        return self.scheduler.add_noise(x0, noise, np.array([t], np.int64)).astype(np.float32)

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
