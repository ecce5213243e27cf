"""Calibration data for static int8: the inputs each component really sees.

The fp32 PyTorch pipeline generates images for a prompt set while a recording backend keeps
every call's inputs: text-encoder token ids, the UNet's (latents, timestep, text) at every
timestep of the trajectory (a UNet sees very different activations at t=999 and t=1), and the
decoder's latents. The optional VAE encoder is calibrated on the images the decoder made (real
images in [-1, 1] at the bundle's size). Samples are laid out to match the export targets'
static shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.pipeline import Pipeline

# Varied scenes: objects, colours, places, styles. Cycled when more prompts are asked for.
CALIBRATION_PROMPTS = (
    "a small red circle on the left of a blue background",
    "a green square above a yellow triangle",
    "a photo of a cat sitting on a wooden table",
    "a mountain lake at sunrise, oil painting",
    "a large purple star in the centre of an orange gradient",
    "a city street at night with neon signs",
    "a bowl of fruit, studio lighting",
    "a white triangle below a black circle on a grey background",
    "an astronaut riding a horse on the moon",
    "a watercolor portrait of an old man",
    "two small blue squares on a pink background",
    "a forest path in autumn",
)


@dataclass
class CalibrationSet:
    """Per component, a list of input tuples in the export target's input order."""

    text_encoder: list[tuple[np.ndarray, ...]]
    unet: list[tuple[np.ndarray, ...]]
    decoder: list[tuple[np.ndarray, ...]]
    encoder: list[tuple[np.ndarray, ...]]
    prompts: int
    seed: int
    steps: int
    guidance: float

    def for_target(self, name: str, tile: int | None = None) -> list[tuple[np.ndarray, ...]]:
        """The named component's input tuples; the tile decoder's (name "decoder_tile", tile:
        its latent side) are the decoder's latents cut into tiles, at the corners and the
        centre (where a tiled decode cuts)."""
        if name != "decoder_tile":
            return getattr(self, name)
        if tile is None:
            raise ValueError("decoder_tile calibration needs the tile's latent side")
        return [(part,) for (latents,) in self.decoder for part in corner_tiles(latents, tile)]

    def describe(self) -> dict:
        return {
            "prompts": self.prompts,
            "seed": self.seed,
            "steps": self.steps,
            "guidance": self.guidance,
        }


def corner_tiles(latents: np.ndarray, t: int) -> list[np.ndarray]:
    """The t x t tiles at the four corners and the centre of latents [1, c, h, w]."""
    h, w = latents.shape[2:]
    starts = [(0, 0), (0, w - t), (h - t, 0), (h - t, w - t), ((h - t) // 2, (w - t) // 2)]
    return [np.ascontiguousarray(latents[:, :, y : y + t, x : x + t]) for y, x in starts]


class RecordingBackend:
    """Wraps a backend and keeps the inputs of every call."""

    def __init__(self, inner: TorchBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.info = inner.info
        self.text_calls: list[np.ndarray] = []
        self.unet_calls: list[tuple[np.ndarray, float, np.ndarray, float | None]] = []
        self.decoder_calls: list[np.ndarray] = []
        self.decoded: list[np.ndarray] = []

    def encode_text(self, token_ids: np.ndarray) -> np.ndarray:
        self.text_calls.append(token_ids.copy())
        return self.inner.encode_text(token_ids)

    def predict(self, latents, timestep, text, guidance=None) -> np.ndarray:
        self.unet_calls.append((latents.copy(), timestep, text.copy(), guidance))
        return self.inner.predict(latents, timestep, text, guidance)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        self.decoder_calls.append(latents.copy())
        image = self.inner.decode(latents)
        self.decoded.append(np.clip(image, -1.0, 1.0))
        return image


def _unet_samples(
    latents: np.ndarray, timestep: float, text: np.ndarray, guidance: float | None, batch: int
) -> list[tuple[np.ndarray, ...]]:
    """One recorded UNet call laid out at the exported batch. A batch-2 export keeps the
    [uncond, cond] pair together; a batch-1 export gets every row as its own sample, so the
    unconditional branch, which the phone runs too, is calibrated as well as the conditional."""
    rows = latents.shape[0]
    if rows % batch:
        raise ValueError(f"a UNet call of {rows} rows does not split into batch {batch}")
    samples = []
    for start in range(0, rows, batch):
        sample = (
            latents[start : start + batch],
            np.full((batch,), timestep, np.float32),
            text[start : start + batch],
        )
        if guidance is not None:
            sample += (np.full((batch,), guidance, np.float32),)
        samples.append(sample)
    return samples


def collect_calibration(
    model: StableDiffusion,
    prompts: int = 8,
    seed: int = 0,
    steps: int = 8,
    guidance: float = 7.5,
    height: int = 512,
    width: int = 512,
    unet_batch: int = 2,
    prompt_set: Sequence[str] = CALIBRATION_PROMPTS,
) -> CalibrationSet:
    """Run the fp32 PyTorch pipeline on `prompts` prompts of `prompt_set` (cycled; seeds seed,
    seed+1, ...)."""
    recorder = RecordingBackend(TorchBackend(model))
    pipeline = Pipeline(recorder, cfg_batch=2)
    for index in range(prompts):
        prompt = prompt_set[index % len(prompt_set)]
        pipeline.generate(
            prompt,
            steps=steps,
            guidance_scale=guidance,
            seed=seed + index,
            height=height,
            width=width,
        )
    return CalibrationSet(
        text_encoder=[(ids,) for ids in recorder.text_calls],
        unet=[s for call in recorder.unet_calls for s in _unet_samples(*call, unet_batch)],
        decoder=[(latents,) for latents in recorder.decoder_calls],
        encoder=[(image,) for image in recorder.decoded],
        prompts=prompts,
        seed=seed,
        steps=steps,
        guidance=guidance,
    )
