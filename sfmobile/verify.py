"""Does a bundle still make the same picture? Per component: max abs and relative error against
the PyTorch reference on inputs from real denoising trajectories; end to end: PSNR and max pixel
difference of final images from the same seeds. Pass/fail thresholds per precision are below,
set from measurements (docs/verify.md says how they were measured).
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
from sfmobile.weights.fingerprint import weights_fingerprint

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


@dataclass(frozen=True)
class Thresholds:
    """component_max_abs: every component's max abs error (None: reported, not judged);
    min_psnr_db: every final image's PSNR against the fp32 PyTorch image."""

    component_max_abs: float | None
    min_psnr_db: float


THRESHOLDS = {
    "fp32": Thresholds(component_max_abs=1e-4, min_psnr_db=40.0),
    "fp16": Thresholds(component_max_abs=None, min_psnr_db=35.0),
    "int8-dynamic": Thresholds(component_max_abs=None, min_psnr_db=22.0),
    "int8-static": Thresholds(component_max_abs=None, min_psnr_db=22.0),
    # QNN bundles on the HTP simulator (docs/verify.md, "QNN"): worst measured image w8a16 28.4 dB
    # (demo), w8a8 24.1 dB (tiny; the demo model's w8a8 at 16 dB fails, as it should).
    "w8a16": Thresholds(component_max_abs=None, min_psnr_db=25.0),
    "w8a8": Thresholds(component_max_abs=None, min_psnr_db=20.0),
}


@dataclass
class ComponentCheck:
    component: str
    precision: str
    samples: int
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class ImageCheck:
    prompt: str
    seed: int
    psnr_db: float
    max_pixel_diff: int
    passed: bool


@dataclass
class VerifyReport:
    bundle: str
    backend: str
    components: list[ComponentCheck] = field(default_factory=list)
    images: list[ImageCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        checks = [c.passed for c in self.components] + [i.passed for i in self.images]
        return all(checks)

    def to_dict(self) -> dict:
        """JSON-ready: an infinite PSNR (identical images) is written as the string "inf"."""
        data = {**asdict(self), "passed": self.passed}
        for image in data["images"]:
            if math.isinf(image["psnr_db"]):
                image["psnr_db"] = "inf"
        return data


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _compare(ours: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    max_abs = max(float(np.max(np.abs(a - b))) for a, b in zip(ours, reference, strict=True))
    scale = max(float(np.max(np.abs(b))) for b in reference) or 1.0
    return max_abs, max_abs / scale


def verify_bundle(
    bundle_path: Path, reference: StableDiffusion, prompts: int = 2, seed: int = 0
) -> VerifyReport:
    """Check every component and `prompts` final images of the bundle against `reference`,
    which must hold the weights the bundle was exported from (its source_sha256)."""
    bundle = read_bundle(bundle_path)
    manifest = bundle.manifest
    expected_sha = manifest.created_by["source_sha256"]
    actual_sha = weights_fingerprint(reference.modules())
    if actual_sha != expected_sha:
        raise InputError(
            f"--reference {reference.source}: its weights (sha256 {actual_sha[:12]}...) are not "
            f"the ones {bundle_path} was exported from (source_sha256 {expected_sha[:12]}...)"
        )
    backend_name = next(iter(manifest.components.values())).format
    ours = open_backend(bundle_path, backend_name)
    torch_backend = TorchBackend(reference)
    steps = manifest.scheduler["default_steps"]
    guidance = manifest.scheduler["default_guidance"]
    height, width = manifest.image["height"], manifest.image["width"]
    report = VerifyReport(bundle=str(bundle_path), backend=backend_name)

    samples = collect_calibration(
        reference,
        prompts=1,
        seed=seed + 1000,
        steps=steps,
        guidance=guidance,
        height=height,
        width=width,
        unet_batch=manifest.guidance["cfg_batch"],
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
        inputs = samples.for_target(name, manifest.components[name].inputs[0].shape[-1])
        max_abs, max_rel = _compare(
            [call(ours, s) for s in inputs], [call(torch_backend, s) for s in inputs]
        )
        precision = manifest.components[name].precision
        limit = THRESHOLDS[precision].component_max_abs
        report.components.append(
            ComponentCheck(
                name, precision, len(inputs), max_abs, max_rel, limit is None or max_abs <= limit
            )
        )

    cfg_batch = manifest.guidance["cfg_batch"]
    unet_precision = manifest.components["unet"].precision
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
            ImageCheck(
                prompt, seed + index, value, diff, value >= THRESHOLDS[unet_precision].min_psnr_db
            )
        )
    return report
