"""Evaluate a text-to-image model on the held-out scenes: prompt adherence, FD-VAE64, speed.

For the fixed held-out prompt set (data.heldout_prompts: captions whose shape-colour or relation
combinations training never showed), one picture per prompt is sampled with seed `seed + i`
(sampling.sample_latents + decode_images, in batches, exactly the pipeline's arithmetic) and:

- adherence: scenes/analyser.analyse reads the picture, analyser.adheres checks every
  attribute the caption states; a prompt adheres when all of them are found ("all"). The rate of
  each attribute is over the prompts that state it.
- the ceiling: the same score on the generator's own renders of those scenes (`RealReference`),
  i.e. how often the analyser reads a perfect picture right; a model cannot be measured more
  precisely than this. `round_trip_adherence` gives a second, lower ceiling: the real renders
  encoded and decoded by a model's VAE, i.e. what its autoencoder lets through at all.
- FD: frechet.frechet_distance between the extractor's features of the generated pictures and
  of the real renders of the same scenes (FD-VAE64 for the scene VAE, see frechet.py).
- speed: wall time of sampling + decoding (not analysis), summed over the batches and divided by
  the prompt count, so it is a batched per-picture time on this machine's CPU threads; and the
  UNet calls per picture (steps x 2 with classifier-free guidance, steps without it or for a
  guidance-conditioned UNet).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from sfmobile.errors import InputError
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.train.evaluation.frechet import VaeFeatures, frechet_distance
from sfmobile.train.sampling import decode_images, sample_latents, to_uint8
from sfmobile.train.scenes.analyser import adheres, analyse
from sfmobile.train.scenes.render import render_scene, to_model_input
from sfmobile.train.scenes.scene import Scene

GUIDANCE_SCALES = (1.0, 4.5, 7.5)  # SnapFusion's table columns
BATCH_SIZE = 25
ALL = "all"


@dataclass(frozen=True)
class EvalConfig:
    """Settings every cell of an evaluation table shares.

    prompts / prompt_seed: heldout_prompts(prompts, prompt_seed); seed: picture i starts from
    the noise of seed + i; image_size: pixels (the size the model was trained at);
    batch_size: prompts sampled at once."""

    prompts: int = 200
    prompt_seed: int = 0
    seed: int = 0
    guidance: tuple[float, ...] = GUIDANCE_SCALES
    image_size: int = 64
    batch_size: int = BATCH_SIZE

    def __post_init__(self) -> None:
        if self.prompts < 2:
            raise InputError(
                f"prompts must be at least 2 (a covariance needs two), got {self.prompts}"
            )
        if self.image_size < 16:
            raise InputError(f"image_size must be at least 16 pixels, got {self.image_size}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.guidance or any(not np.isfinite(w) or w < 0 for w in self.guidance):
            raise InputError(f"guidance must be finite scales >= 0, got {self.guidance}")


@dataclass(frozen=True)
class AdherenceScore:
    """rate: share of prompts with every stated attribute found; attributes: per adheres() key,
    the share of the prompts stating it that show it; counts: how many prompts state each."""

    rate: float
    attributes: dict[str, float]
    counts: dict[str, int]


@dataclass(frozen=True)
class EvalResult:
    """One cell: one model at one step count and guidance scale on the held-out prompts."""

    label: str
    steps: int
    guidance: float
    prompts: int
    adherence: AdherenceScore
    fd: float
    fd_name: str
    seconds_per_image: float
    unet_calls_per_image: int
    batch_size: int
    threads: int = field(default_factory=torch.get_num_threads)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RealReference:
    """The real renders of the held-out scenes, their features and the analyser's ceiling."""

    scenes: tuple[Scene, ...]
    images: np.ndarray  # uint8 [N, S, S, 3]
    features: np.ndarray  # float64 [N, D]
    adherence: AdherenceScore

    @staticmethod
    def build(scenes: Sequence[Scene], image_size: int, extractor: VaeFeatures) -> RealReference:
        images = np.stack([render_scene(scene, image_size) for scene in scenes])
        return RealReference(
            tuple(scenes), images, extractor(images), score_adherence(images, scenes)
        )


def score_adherence(images: np.ndarray, scenes: Sequence[Scene]) -> AdherenceScore:
    """Analyse each uint8 picture [N, S, S, 3] and check it against its scene."""
    if len(images) != len(scenes):
        raise InputError(f"{len(images)} pictures but {len(scenes)} scenes")
    found: dict[str, list[bool]] = {}
    for image, scene in zip(images, scenes, strict=True):
        for key, ok in adheres(analyse(image), scene).items():
            found.setdefault(key, []).append(ok)
    attributes = {key: float(np.mean(values)) for key, values in found.items()}
    counts = {key: len(values) for key, values in found.items()}
    return AdherenceScore(attributes.get(ALL, 0.0), attributes, counts)


@torch.no_grad()
def round_trip_adherence(
    model: StableDiffusion, reference: RealReference, batch_size: int = BATCH_SIZE
) -> AdherenceScore:
    """The analyser on `reference`'s real renders after model.vae's encode + decode (latent
    means, as inference would see them): no model that draws through this VAE can do better."""
    decoded = []
    for start in range(0, len(reference.images), batch_size):
        batch = reference.images[start : start + batch_size]
        images = torch.from_numpy(np.stack([to_model_input(image) for image in batch]))
        decoded.append(to_uint8(model.vae.decode(model.vae.encode(images))))
    return score_adherence(np.concatenate(decoded), reference.scenes)


def unet_calls_per_image(model: StableDiffusion, steps: int, guidance: float) -> int:
    """UNet evaluations per picture, as sample_latents and the pipeline make them."""
    if model.config.unet.guidance_embedding or guidance <= 1.0:
        return steps
    return 2 * steps


def generate(
    model: StableDiffusion,
    captions: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    image_size: int,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """(uint8 pictures [N, S, S, 3], seconds spent sampling + decoding them), in batches."""
    factor = model.config.vae.downscale
    if image_size % factor:
        raise InputError(f"image_size {image_size} is not a multiple of the VAE's {factor}x")
    images, seconds = [], 0.0
    for start in range(0, len(captions), batch_size):
        batch = slice(start, start + batch_size)
        began = time.perf_counter()
        latents = sample_latents(
            model, captions[batch], seeds[batch], steps, guidance, image_size // factor
        )
        images.append(decode_images(model, latents))
        seconds += time.perf_counter() - began
        if on_batch is not None:
            on_batch(len(images[-1]))
    return np.concatenate(images), seconds


def evaluate(
    model: StableDiffusion,
    steps: int,
    guidance: float,
    prompts: Sequence[Scene],
    seed: int = 0,
    extractor: VaeFeatures | None = None,
    *,
    label: str = "",
    image_size: int = 64,
    batch_size: int = BATCH_SIZE,
    reference: RealReference | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> EvalResult:
    """Score `model` sampled with `steps` and `guidance` on `prompts` (held-out Scenes).

    extractor: the FD features (default: the model's own VAE); reference: the real renders
    with that extractor's features (built when not given; pass it to share it across cells).
    """
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    model.eval()
    extractor = extractor or VaeFeatures(model.vae, model.source)
    if reference is None:
        reference = RealReference.build(prompts, image_size, extractor)
    elif [s.caption for s in reference.scenes] != [s.caption for s in prompts]:
        raise InputError("reference was built for other prompts than the ones evaluated")
    elif reference.images.shape[1] != image_size:
        raise InputError(
            f"reference renders are {reference.images.shape[1]} px, image_size is {image_size}"
        )
    captions = [scene.caption for scene in prompts]
    seeds = [seed + i for i in range(len(prompts))]
    images, seconds = generate(
        model, captions, seeds, steps, guidance, image_size, batch_size, on_batch
    )
    return EvalResult(
        label=label or model.source,
        steps=steps,
        guidance=float(guidance),
        prompts=len(prompts),
        adherence=score_adherence(images, prompts),
        fd=frechet_distance(extractor(images), reference.features),
        fd_name=extractor.name,
        seconds_per_image=seconds / len(prompts),
        unet_calls_per_image=unet_calls_per_image(model, steps, guidance),
        batch_size=batch_size,
    )
