"""torch model -> bundle: each component converted in the requested format and precision, the
tokenizer files, and a manifest, written atomically (see bundle.BundleWriter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sfmobile
from sfmobile.bundle import BundleWriter, ComponentSpec, Manifest
from sfmobile.errors import InputError
from sfmobile.export.calibration import CalibrationSet, collect_calibration
from sfmobile.export.recipe import Recipe
from sfmobile.export.targets import ExportTarget, export_targets, release_after_conversion
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.weights.fingerprint import weights_fingerprint

Phase = Callable[[str, str], None]  # (component, phase name)


def _converter(format: str, soc: str | None, allow_cpu_fallback: bool, qnn: dict):
    """export_component(target, precision, quantization, samples, out_dir, phase) -> spec; for
    qnn, placements and the SDK version are collected into `qnn` (the manifest's section)."""
    if format == "qnn":
        from sfmobile.export import qnn as qnn_export
        from sfmobile.qnn.socs import soc as find_soc

        chip = find_soc(soc or "")
        qnn.update(soc=chip.name, htp_arch=chip.htp_arch, soc_model=chip.soc_model, placement={})

        def export_qnn(target, precision, quantization, samples, out_dir, phase):
            spec, placed = qnn_export.export_component(
                target, precision, chip, samples, out_dir, allow_cpu_fallback, phase
            )
            qnn["qnn_sdk"] = placed.pop("qnn_sdk")
            qnn["placement"][target.name] = placed
            return spec

        return export_qnn
    if soc is not None or allow_cpu_fallback:
        raise InputError("--soc and --allow-cpu-fallback apply to --format qnn only")
    if format == "onnx":
        from sfmobile.export.onnx import export_component
    else:
        from sfmobile.export.tflite import export_component
    return export_component


def export_bundle(
    model: StableDiffusion,
    out: Path,
    format: str,
    precision: str,
    quantization: str | None = None,
    height: int = 512,
    width: int = 512,
    cfg_batch: int = 2,
    calibration_prompts: int = 8,
    seed: int = 0,
    phase: Phase = lambda component, name: None,
    with_encoder: bool = False,
    soc: str | None = None,
    allow_cpu_fallback: bool = False,
    release_weights: bool = False,
    decoder_tile: int | None = None,
) -> Path:
    """Export `model` to a bundle folder at `out` (replaced only once complete); with_encoder
    adds the VAE encoder (image-to-image); decoder_tile (pixels) adds the decoder at that square
    tile size (tiled decoding, sfmobile/tiled_decode.py). LoRAs merged into `model`
    (weights/lora.py) are recorded in the recipe. release_weights: free each component's torch
    weights once it is converted (a full-size export's peak memory drops by their size); `model`
    cannot be used afterwards, so only for a caller that discards it (the CLI)."""
    recipe = Recipe.from_options(format, precision, quantization)
    qnn: dict = {}
    export_component = _converter(format, soc, allow_cpu_fallback, qnn)
    check_sizes(model, height, width, cfg_batch, calibration_prompts)
    check_decoder_tile(model, height, width, decoder_tile)
    fingerprint = weights_fingerprint(model.modules())
    targets = export_targets(model, height, width, cfg_batch, with_encoder, decoder_tile)
    calibration = calibrate(
        model, recipe, targets, (height, width), calibration_prompts, seed, phase
    )
    tokenizer = ClipTokenizer.of_model(model.tokenizer_dir)
    if release_weights:
        release_after_conversion(targets)
    with BundleWriter(Path(out)) as writer:
        tokenizer.save(writer.dir / "tokenizer")
        components = export_components(
            targets, recipe, calibration, export_component, writer.dir, phase
        )
        phase("all", "write")
        manifest = bundle_manifest(
            model, recipe, components, tokenizer, (height, width), unet_batch(targets),
            calibration, qnn, fingerprint,
        )  # fmt: skip
        return writer.finish(manifest)


def check_sizes(
    model: StableDiffusion, height: int, width: int, cfg_batch: int, calibration_prompts: int
) -> None:
    """Refuse an image size the VAE cannot tile, a CFG batch and a calibration count the
    exporter does not make, before anything is converted."""
    factor = model.config.vae.downscale
    for name, value in (("--height", height), ("--width", width)):
        if value < 8 or value % 8 or value % factor:
            raise InputError(
                f"{name} must be a positive multiple of 8 (and of {factor}), got {value}"
            )
    if cfg_batch not in (1, 2):
        raise InputError(f"--cfg-batch must be 1 or 2, got {cfg_batch}")
    if calibration_prompts < 1:
        raise InputError(f"--calibration-prompts must be >= 1, got {calibration_prompts}")


def check_decoder_tile(
    model: StableDiffusion, height: int, width: int, decoder_tile: int | None
) -> None:
    """A tile is a square of whole latent pixels that fits inside the image."""
    if decoder_tile is None:
        return
    factor = model.config.vae.downscale
    if decoder_tile < factor or decoder_tile % factor or decoder_tile > min(height, width):
        raise InputError(
            f"--decoder-tile must be a multiple of {factor} pixels, at most the image's "
            f"{min(height, width)}, got {decoder_tile}"
        )


def unet_batch(targets: list[ExportTarget]) -> int:
    """The UNet's batch (2: conditional and unconditional in one call; 1: two calls)."""
    return targets[1].inputs[0].shape[0]


def calibrate(
    model: StableDiffusion,
    recipe: Recipe,
    targets: list[ExportTarget],
    size: tuple[int, int],
    prompts: int,
    seed: int,
    phase: Phase,
) -> CalibrationSet | None:
    """Each target's inputs recorded from the fp32 pipeline, when the recipe quantizes
    activations statically; None otherwise."""
    if not recipe.calibrated:
        return None
    phase("all", "calibrate")
    return collect_calibration(
        model,
        prompts=prompts,
        seed=seed,
        steps=model.scheduler.default_steps,
        guidance=model.scheduler.default_guidance,
        height=size[0],
        width=size[1],
        unet_batch=unet_batch(targets),
    )


def export_components(
    targets: list[ExportTarget],
    recipe: Recipe,
    calibration: CalibrationSet | None,
    export_component: Callable,
    folder: Path,
    phase: Phase,
) -> dict[str, ComponentSpec]:
    """Convert each target into `folder`: {component name: its manifest entry}."""
    components = {}
    for target in targets:
        components[target.name] = export_component(
            target,
            recipe.precision,
            recipe.quantization,
            calibration.for_target(target.name, target.inputs[0].shape[-1])
            if calibration
            else None,
            folder,
            lambda name, component=target.name: phase(component, name),
        )
    return components


def bundle_manifest(
    model: StableDiffusion,
    recipe: Recipe,
    components: dict[str, ComponentSpec],
    tokenizer: ClipTokenizer,
    size: tuple[int, int],
    cfg_batch: int,
    calibration: CalibrationSet | None,
    qnn: dict,
    fingerprint: str,
) -> Manifest:
    """The manifest of a bundle of `components`: the model's scheduler, latent and tokenizer
    contract, and how the bundle was made (recipe, source weights and their `fingerprint`
    (weights_fingerprint, taken before any weights are released), LoRAs)."""
    height, width = size
    factor = model.config.vae.downscale
    return Manifest(
        components=components,
        scheduler=model.scheduler.to_dict(),
        image={"height": height, "width": width},
        latent={
            "channels": model.config.vae.latent_channels,
            "height": height // factor,
            "width": width // factor,
            "scaling_factor": model.config.vae.scaling_factor,
        },
        tokenizer={
            "vocab": "tokenizer/vocab.json",
            "merges": "tokenizer/merges.txt",
            "max_length": 77,
            "start_id": tokenizer.start_id,
            "end_id": tokenizer.end_id,
            "pad_id": tokenizer.pad_id,
        },
        guidance={
            "cfg_batch": cfg_batch,
            "input": model.config.unet.guidance_embedding,
            **({"distilled_range": list(model.guidance_range)} if model.guidance_range else {}),
        },
        created_by={
            "sfmobile_version": sfmobile.__version__,
            "source": model.source,
            "source_sha256": fingerprint,
            "recipe": {
                "format": recipe.format,
                "precision": recipe.precision,
                "quantization": recipe.quantization,
                "calibration": calibration.describe() if calibration else None,
                **({"lora": list(model.loras)} if model.loras else {}),
            },
        },
        qnn=qnn or None,
    )
