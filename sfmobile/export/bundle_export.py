"""torch model -> bundle: each component converted in the requested format and precision, the
tokenizer files, and a manifest, written atomically (see bundle.BundleWriter)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sfmobile
from sfmobile.bundle import BundleWriter, Manifest
from sfmobile.errors import InputError
from sfmobile.export.calibration import CalibrationSet, collect_calibration
from sfmobile.export.targets import export_targets
from sfmobile.models.stable_diffusion import StableDiffusion
from sfmobile.tokenizer import ClipTokenizer
from sfmobile.weights.fingerprint import weights_fingerprint

FORMATS = ("onnx", "tflite", "qnn")
PRECISIONS = ("fp32", "fp16", "int8")
QNN_PRECISIONS = ("w8a16", "w8a8", "fp16")
QUANTIZATIONS = ("dynamic", "static")
Phase = Callable[[str, str], None]  # (component, phase name)


def check_recipe(format: str, precision: str, quantization: str | None) -> str | None:
    """Validate the recipe; returns the quantization (int8 defaults to dynamic)."""
    if format not in FORMATS:
        raise InputError(f"--format {format!r}: expected one of {', '.join(FORMATS)}")
    if format == "qnn":
        if precision not in QNN_PRECISIONS:
            raise InputError(
                f"--precision {precision!r}: --format qnn takes {', '.join(QNN_PRECISIONS)}"
            )
        if quantization is not None:
            raise InputError("--quantization does not apply to --format qnn (w8a* are static)")
        return None
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "int8":
        if quantization is not None:
            raise InputError(f"--quantization applies to --precision int8 only, not {precision}")
        return None
    quantization = quantization or "dynamic"
    if quantization not in QUANTIZATIONS:
        raise InputError(
            f"--quantization {quantization!r}: expected one of {', '.join(QUANTIZATIONS)}"
        )
    return quantization


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
) -> Path:
    """Export `model` to a bundle folder at `out` (replaced only once complete); with_encoder
    adds the VAE encoder (image-to-image). LoRAs merged into `model` (weights/lora.py) are
    recorded in the recipe."""
    quantization = check_recipe(format, precision, quantization)
    qnn: dict = {}
    export_component = _converter(format, soc, allow_cpu_fallback, qnn)
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
    targets = export_targets(model, height, width, cfg_batch, with_encoder)
    calibration: CalibrationSet | None = None
    if quantization == "static" or precision in ("w8a16", "w8a8"):
        phase("all", "calibrate")
        calibration = collect_calibration(
            model,
            prompts=calibration_prompts,
            seed=seed,
            steps=model.scheduler.default_steps,
            guidance=model.scheduler.default_guidance,
            height=height,
            width=width,
            unet_batch=targets[1].inputs[0].shape[0],
        )
    tokenizer = ClipTokenizer.of_model(model.tokenizer_dir)
    with BundleWriter(Path(out)) as writer:
        tokenizer.save(writer.dir / "tokenizer")
        components = {}
        for target in targets:
            samples = calibration.for_target(target.name) if calibration else None
            components[target.name] = export_component(
                target,
                precision,
                quantization,
                samples,
                writer.dir,
                lambda name, component=target.name: phase(component, name),
            )
        phase("all", "write")
        manifest = Manifest(
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
                "cfg_batch": targets[1].inputs[0].shape[0],
                "input": model.config.unet.guidance_embedding,
                **({"distilled_range": list(model.guidance_range)} if model.guidance_range else {}),
            },
            created_by={
                "sfmobile_version": sfmobile.__version__,
                "source": model.source,
                "source_sha256": weights_fingerprint(model.modules()),
                "recipe": {
                    "format": format,
                    "precision": precision,
                    "quantization": quantization,
                    "calibration": calibration.describe() if calibration else None,
                    **({"lora": list(model.loras)} if model.loras else {}),
                },
            },
            qnn=qnn or None,
        )
        return writer.finish(manifest)
