"""`sfmobile demo`: the shipped model (or any checkpoint) exported to every bundle kind, run on
every backend with the same prompts and seeds, and compared with the PyTorch reference.

Bundles: ONNX and TFLite in fp16 and int8 (int8 = the export CLI's default, dynamic: weights
int8, activations quantized per call; no calibration pass), at one square image size. Every
backend runs one untimed warm-up generation, then each prompt at the model's default steps and
guidance through the Pipeline; the images, their agreement with the torch images (PSNR and max
pixel difference, sfmobile.verify), the per-component timings, bundle sizes and export times go
to OUT/report.md (written by demo_report.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import numpy as np

from sfmobile.apps.demo_report import write_report
from sfmobile.apps.demo_result import (
    RECIPES,
    REFERENCE,
    BackendResult,
    BundleResult,
    DemoConfig,
    DemoResult,
)
from sfmobile.errors import InputError


class DemoProgress(Protocol):
    """What the demo reports while it runs (the CLI draws it with rich)."""

    def phase(self, name: str, total: int) -> None: ...

    def advance(self, label: str) -> None: ...

    def note(self, label: str) -> None: ...


class SilentProgress:
    def phase(self, name: str, total: int) -> None:
        pass

    def advance(self, label: str) -> None:
        pass

    def note(self, label: str) -> None:
        pass


def demo_prompts(count: int) -> list[str]:
    """Captions of held-out scenes (combinations the model never saw in training)."""
    from sfmobile.train.scenes.generator import heldout_prompts

    return [scene.caption for scene in heldout_prompts(n=count, seed=0)]


def component_parameters(model) -> dict[str, int]:
    """Parameters of what each bundle component holds (the decoder without the VAE encoder)."""
    modules = {"text_encoder": model.text_encoder, "unet": model.unet, "decoder": model.vae.decoder}
    return {name: sum(p.numel() for p in module.parameters()) for name, module in modules.items()}


def export_bundles(model, config: DemoConfig, progress: DemoProgress) -> dict[str, BundleResult]:
    from sfmobile.bundle import read_bundle
    from sfmobile.export.bundle_export import export_bundle

    names = [name for name in config.backend_order() if RECIPES[name]]
    progress.phase("export", len(names))
    bundles = {}
    for name in names:
        format, precision = RECIPES[name]
        started = time.perf_counter()
        path = export_bundle(
            model,
            config.out / "bundles" / name,
            format,
            precision,
            height=config.image_size,
            width=config.image_size,
            phase=lambda component, step, name=name: progress.note(f"{name}: {component} {step}"),
        )
        seconds = time.perf_counter() - started
        manifest = read_bundle(path, verify="sizes").manifest
        sizes = {
            component: sum(manifest.files[f]["bytes"] for f in spec.files)
            for component, spec in manifest.components.items()
        }
        label = manifest.components["unet"].precision
        bundles[name] = BundleResult(name, path, label, sizes, seconds)
        progress.advance(f"{name} ({seconds:.1f} s)")
    return bundles


def open_demo_backend(name: str, model, bundles: dict[str, BundleResult]):
    from sfmobile.backends.factory import open_backend
    from sfmobile.backends.torch_backend import TorchBackend

    if name == REFERENCE:
        return TorchBackend(model)
    return open_backend(bundles[name].path, RECIPES[name][0])


def run_backend(
    name: str, model, result: DemoResult, reference: list[np.ndarray], progress: DemoProgress
) -> BackendResult:
    """One backend: an untimed warm-up, then every prompt. torch's images are appended to
    `reference`; every image is compared with the reference image of its prompt."""
    from sfmobile.pipeline import Pipeline
    from sfmobile.verify import THRESHOLDS, psnr

    config = result.config
    bundle = result.bundles.get(name)
    run = BackendResult(name, bundle.precision if bundle else "fp32")
    if bundle:
        run.min_psnr_db = THRESHOLDS[bundle.precision].min_psnr_db
    size = config.image_size
    kwargs = dict(guidance_scale=result.guidance, height=size, width=size)
    pipeline = Pipeline(open_demo_backend(name, model, result.bundles))
    progress.note(f"{name}: warm-up")
    pipeline.generate("warm-up", steps=1, seed=0, **kwargs)
    for index, (prompt, seed) in enumerate(zip(result.prompts, result.seeds, strict=True)):
        generation = pipeline.generate(prompt, steps=result.steps, seed=seed, **kwargs)
        path = config.out / "images" / f"p{index}-{name}.png"
        generation.image.save(path)
        pixels = np.asarray(generation.image)
        if name == REFERENCE:
            reference.append(pixels)
        run.images.append(path)
        run.timings.append(generation.timings)
        run.psnr_db.append(psnr(pixels, reference[index]))
        diff = np.abs(pixels.astype(np.int16) - reference[index].astype(np.int16))
        run.max_pixel_diff.append(int(diff.max()))
        progress.advance(f"{name}: prompt {index + 1}")
    return run


def run_backends(model, result: DemoResult, progress: DemoProgress) -> dict[str, BackendResult]:
    """Every backend in turn, torch first (its images are the reference)."""
    import torch

    (result.config.out / "images").mkdir(parents=True, exist_ok=True)
    names = result.config.backend_order()
    progress.phase("generate", len(names) * len(result.prompts))
    reference: list[np.ndarray] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(result.torch_threads)
    try:
        return {name: run_backend(name, model, result, reference, progress) for name in names}
    finally:
        torch.set_num_threads(threads)


def run_demo(config: DemoConfig, progress: DemoProgress | None = None) -> Path:
    """Export, generate, compare, and write OUT/report.md; returns the report's path."""
    import torch

    from sfmobile.weights import load_model

    progress = progress or SilentProgress()
    started = time.perf_counter()
    progress.phase("load", 1)
    model = load_model(config.model)
    factor = model.config.vae.downscale
    if config.image_size % factor:
        raise InputError(f"--size {config.image_size}: must be a multiple of {factor} here")
    progress.advance(model.source)
    prompts = demo_prompts(config.prompts)
    result = DemoResult(
        config=config,
        source=model.source,
        parameters=component_parameters(model),
        steps=model.scheduler.default_steps,
        guidance=model.scheduler.default_guidance,
        prompts=prompts,
        seeds=[config.seed + index for index in range(len(prompts))],
        torch_threads=config.torch_threads or torch.get_num_threads(),
    )
    config.out.mkdir(parents=True, exist_ok=True)
    result.bundles = export_bundles(model, config, progress)
    result.backends = run_backends(model, result, progress)
    result.wall_seconds = time.perf_counter() - started
    return write_report(result, config.out / "report.md")
