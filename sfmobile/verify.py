"""Does a bundle still make the same picture? Per component, on identical inputs taken from a
real fp32 denoising trajectory of the PyTorch reference: the text encoder's embeddings, the
UNet's output at every step (teacher-forced: each step gets the reference's latents, so errors
do not compound) and the decoder's (and VAE encoder's) output; end to end: PSNR and max pixel
difference of final images from the same seeds. Every check is judged against the threshold of
its precision (sfmobile/verify_thresholds.py; docs/verify.md says how they were measured).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sfmobile.backends.factory import open_backend
from sfmobile.backends.torch_backend import TorchBackend
from sfmobile.bundle import read_bundle
from sfmobile.errors import InputError
from sfmobile.export.calibration import CALIBRATION_PROMPTS, collect_calibration
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.pipeline import Pipeline
from sfmobile.verify_thresholds import THRESHOLDS, Thresholds, thresholds_for
from sfmobile.weights.fingerprint import weights_fingerprint

__all__ = ["THRESHOLDS", "VERIFY_PROMPTS", "Thresholds", "psnr", "verify_bundle"]

# The prompts of every verify check (component inputs and final images): never calibration
# prompts, so a bundle is judged on inputs its quantization ranges were not fitted to.
VERIFY_PROMPTS = (
    "a yellow circle next to a green triangle on a white background",
    "a lighthouse on a cliff during a storm",
    "a red bicycle leaning against a brick wall",
    "three small orange squares in a row on a dark blue background",
    "a snowy village at dusk, digital art",
    "a cup of coffee on a desk beside a laptop",
)
if set(VERIFY_PROMPTS) & set(CALIBRATION_PROMPTS):
    raise RuntimeError("verify prompts overlap the calibration prompts")


@dataclass
class ComponentCheck:
    """One component on identical inputs; the UNet has one check per step of the trajectory."""

    component: str
    precision: str
    step: int | None  # UNet: 1-based step of the reference trajectory
    timestep: float | None  # UNet: the step's timestep
    samples: int
    max_abs: float
    max_rel: float  # max abs / the largest reference value
    rel_error: float  # judged: ||ours - reference|| / ||reference||
    threshold: float
    passed: bool

    @property
    def name(self) -> str:
        if self.step is None:
            return self.component
        return f"{self.component} step {self.step} (t={self.timestep:g})"

    def failure(self) -> str:
        return (
            f"{self.name} ({self.precision}): relative error {self.rel_error:.3g} "
            f"> threshold {self.threshold:.3g} (max abs {self.max_abs:.3g})"
        )


@dataclass
class ImageCheck:
    prompt: str
    seed: int
    psnr_db: float
    max_pixel_diff: int
    min_psnr_db: float
    passed: bool

    def failure(self) -> str:
        return (
            f"image seed {self.seed}: PSNR {self.psnr_db:.1f} dB < threshold "
            f"{self.min_psnr_db:g} dB (max pixel difference {self.max_pixel_diff})"
        )


@dataclass
class VerifyReport:
    bundle: str
    backend: str
    components: list[ComponentCheck] = field(default_factory=list)
    images: list[ImageCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures()

    def failures(self) -> list[str]:
        """One line per failed check: what, where, measured vs threshold."""
        checks = [*self.components, *self.images]
        return [check.failure() for check in checks if not check.passed]

    def to_dict(self) -> dict:
        """JSON-ready: a non-finite number (an identical image's PSNR, a NaN output's error) is
        written as a string ("inf", "nan")."""
        data = {**asdict(self), "passed": self.passed, "failures": self.failures()}
        for check in data["components"] + data["images"]:
            for key, value in check.items():
                if isinstance(value, float) and not math.isfinite(value):
                    check[key] = str(value)
        return data


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def errors(ours: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float, float]:
    """(max abs, max abs / largest reference value, L2 relative error) over all outputs."""
    diff = [
        a.astype(np.float64) - b.astype(np.float64) for a, b in zip(ours, reference, strict=True)
    ]
    max_abs = max(float(np.max(np.abs(d))) for d in diff)
    scale = max(float(np.max(np.abs(b))) for b in reference) or 1.0
    error_norm = math.sqrt(sum(float(np.sum(d * d)) for d in diff))
    reference_norm = math.sqrt(sum(float(np.sum(b.astype(np.float64) ** 2)) for b in reference))
    return max_abs, max_abs / scale, error_norm / (reference_norm or 1.0)


def _check_source(bundle_path: Path, source_sha: str, reference: StableDiffusion) -> None:
    actual_sha = weights_fingerprint(reference.modules())
    if actual_sha != source_sha:
        raise InputError(
            f"--reference {reference.source}: its weights (sha256 {actual_sha[:12]}...) are not "
            f"the ones {bundle_path} was exported from (source_sha256 {source_sha[:12]}...)"
        )


def _groups(name: str, samples: list[tuple], steps: int) -> list[tuple[int | None, list]]:
    """The checks of one component: the UNet's samples split by step (a batch-1 UNet has the
    unconditional and conditional rows of a step as two samples), every other component's in
    one group."""
    if name != "unet":
        return [(None, samples)]
    per_step = len(samples) // steps
    return [(step + 1, samples[step * per_step : (step + 1) * per_step]) for step in range(steps)]


def verify_bundle(
    bundle_path: Path, reference: StableDiffusion, prompts: int = 2, seed: int = 0
) -> VerifyReport:
    """Check every component and `prompts` final images of the bundle against `reference`,
    which must hold the weights the bundle was exported from (its source_sha256)."""
    manifest = read_bundle(bundle_path).manifest
    _check_source(bundle_path, manifest.created_by["source_sha256"], reference)
    limits = {
        name: thresholds_for(spec.precision, f"{bundle_path}: manifest component {name}")
        for name, spec in manifest.components.items()
    }
    backend_name = next(iter(manifest.components.values())).format
    ours = open_backend(bundle_path, backend_name)
    torch_backend = TorchBackend(reference)
    steps = manifest.scheduler["default_steps"]
    guidance = manifest.scheduler["default_guidance"]
    height, width = manifest.image["height"], manifest.image["width"]
    cfg_batch = manifest.guidance["cfg_batch"]
    report = VerifyReport(bundle=str(bundle_path), backend=backend_name)

    samples = collect_calibration(
        reference,
        prompts=1,
        seed=seed + 1000,
        steps=steps,
        guidance=guidance,
        height=height,
        width=width,
        unet_batch=cfg_batch,
        prompt_set=VERIFY_PROMPTS,
    )
    calls = {
        "text_encoder": lambda b, s: b.encode_text(s[0]),
        "unet": lambda b, s: b.predict(s[0], float(s[1][0]), s[2], *(float(g[0]) for g in s[3:])),
        "decoder": lambda b, s: b.decode(s[0]),
    }
    if "encoder" in manifest.components:  # optional (image-to-image)
        calls["encoder"] = lambda b, s: b.encode_image(s[0])
    if "decoder_tile" in manifest.components:  # optional (tiled decoding)
        calls["decoder_tile"] = lambda b, s: b.decode_tile(s[0])
    for name, call in calls.items():
        precision = manifest.components[name].precision
        limit = limits[name].component(name)
        tile = manifest.components[name].inputs[0].shape[-1]
        for step, inputs in _groups(name, samples.for_target(name, tile), steps):
            max_abs, max_rel, rel_error = errors(
                [call(ours, s) for s in inputs], [call(torch_backend, s) for s in inputs]
            )
            timestep = float(inputs[0][1][0]) if step is not None else None
            report.components.append(
                ComponentCheck(
                    name, precision, step, timestep, len(inputs), max_abs, max_rel,
                    rel_error, limit, rel_error <= limit,
                )
            )  # fmt: skip

    min_psnr_db = limits["unet"].min_psnr_db
    for index in range(prompts):
        prompt = VERIFY_PROMPTS[(index + 1) % len(VERIFY_PROMPTS)]
        kwargs = dict(
            steps=steps, guidance_scale=guidance, seed=seed + index, height=height, width=width
        )
        # Whole decodes on both sides: the image check measures precision; a tile decoder is
        # checked above as a component, tiling's own approximation in tests/test_tiled_decode.py.
        whole = Pipeline(ours, cfg_batch, tile_decoder=False)
        image = np.asarray(whole.generate(prompt, **kwargs).image)
        expected = np.asarray(Pipeline(torch_backend, cfg_batch).generate(prompt, **kwargs).image)
        value = psnr(image, expected)
        diff = int(np.max(np.abs(image.astype(np.int16) - expected.astype(np.int16))))
        report.images.append(
            ImageCheck(prompt, seed + index, value, diff, min_psnr_db, value >= min_psnr_db)
        )
    return report
