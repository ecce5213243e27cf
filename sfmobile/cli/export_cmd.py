"""`sfmobile export`: a checkpoint -> a bundle of ONNX or TFLite files in one precision."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sfmobile.bundle import FORMAT as BUNDLE_FORMAT
from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.output_paths import check_output_folder


@app.command()
@user_errors_exit_2
def export(
    model: Path = typer.Option(..., help="diffusers folder, sfmobile checkpoint or CompVis file"),
    format: str = typer.Option(..., "--format", help="onnx | tflite | qnn"),
    precision: str = typer.Option(..., help="fp32 | fp16 | int8; qnn: w8a16 | w8a8 | fp16"),
    quantization: str = typer.Option(None, help="int8 only: dynamic (default) | static"),
    out: Path = typer.Option(
        ..., help="Bundle folder: new, empty, or an earlier bundle (replaced when complete)."
    ),
    preset: str = typer.Option(None, help="Architecture of a single-file checkpoint."),
    height: int = typer.Option(512, help="Image height the bundle is exported for."),
    width: int = typer.Option(512, help="Image width the bundle is exported for."),
    cfg_batch: int = typer.Option(2, help="UNet batch: 2 = [uncond, cond] per call, 1 = two."),
    calibration_prompts: int = typer.Option(8, help="Prompts for static int8 calibration."),
    seed: int = typer.Option(0, help="Seed of the calibration generations."),
    with_encoder: bool = typer.Option(
        False, help="Also export the VAE encoder (image-to-image: generate --init-image)."
    ),
    lora: list[str] = typer.Option(
        None,
        help="Merge a LoRA file (kohya or diffusers layout) into the weights before export, "
        "FILE.safetensors[:SCALE]; repeatable.",
    ),
    lora_partial: bool = typer.Option(
        False, help="Merge the LoRA modules this model has and warn about the rest."
    ),
    decoder_tile: int = typer.Option(
        None,
        help="Also export the decoder at this square tile size in pixels (tiled decoding: a "
        "lower peak memory in generate; e.g. 256 for a 512x512 bundle).",
        show_default=False,
    ),
    soc: str = typer.Option(None, help="qnn: the Snapdragon SoC to compile for, e.g. SM8650."),
    allow_cpu_fallback: bool = typer.Option(
        False, help="qnn: accept nodes the HTP rejects running on the CPU (else an error)."
    ),
) -> None:
    """Export the text encoder, UNet and decoder (and with --with-encoder the VAE encoder) to a
    bundle (manifest.json + model files)."""
    from sfmobile.export.bundle_export import export_bundle
    from sfmobile.export.recipe import Recipe
    from sfmobile.weights import load_model
    from sfmobile.weights.lora import LoraFile, merge_loras

    Recipe.from_options(format, precision, quantization)
    loras = [LoraFile.parse(text) for text in lora or []]
    check_output_folder(out, BUNDLE_FORMAT, sources=[("--model", model)])
    console = Console(stderr=True)
    started = time.perf_counter()
    with console.status("loading the checkpoint") as status:
        loaded = load_model(model, preset)
        if loras:
            status.update("merging LoRA weights")
            merge_loras(loaded, loras, lora_partial)

        def phase(component: str, name: str) -> None:
            elapsed = time.perf_counter() - started
            status.update(f"[{elapsed:6.1f} s] {component}: {name}")
            console.log(f"{component}: {name}")

        path = export_bundle(
            loaded,
            out,
            format,
            precision,
            quantization,
            height=height,
            width=width,
            cfg_batch=cfg_batch,
            calibration_prompts=calibration_prompts,
            seed=seed,
            phase=phase,
            with_encoder=with_encoder,
            soc=soc,
            allow_cpu_fallback=allow_cpu_fallback,
            release_weights=True,  # `loaded` is not used again: a full-size UNet's 3 GB go early
            decoder_tile=decoder_tile,
        )
    print_sizes(path, console)
    console.print(f"wrote {path} in {time.perf_counter() - started:.1f} s")


def print_sizes(bundle_path: Path, console: Console) -> None:
    from sfmobile.bundle import read_bundle

    manifest = read_bundle(bundle_path, verify="sizes").manifest
    table = Table(title=f"{bundle_path}")
    for column in ("component", "format", "precision", "files", "MB"):
        table.add_column(column)
    for name, spec in manifest.components.items():
        size = sum(manifest.files[f]["bytes"] for f in spec.files)
        table.add_row(name, spec.format, spec.precision, ", ".join(spec.files), f"{size / 1e6:.2f}")
    console.print(table)
