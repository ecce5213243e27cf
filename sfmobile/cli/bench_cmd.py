"""`sfmobile bench`: time a model's components and whole run per backend and precision, each
case in a fresh process, against diffusers' SD-1.5 pipeline and this CPU's nominal peak."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sfmobile.cli.app import app, user_errors_exit_2


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@app.command()
@user_errors_exit_2
def bench(
    preset: str = typer.Option("snapfusion", help="Architecture (random weights unless --model)."),
    model: Path = typer.Option(None, help="A checkpoint to time instead of random weights."),
    reference_preset: str = typer.Option(
        None, help="The SD-1.5-layout preset compared against (default: sd15; tiny for tiny*)."
    ),
    backends: str = typer.Option("torch,onnx,tflite", help="Comma-separated backends."),
    precisions: str = typer.Option(
        "fp32,fp16,int8",
        help="Comma-separated precisions: fp32, fp16, int8 (dynamic), int8-static.",
    ),
    size: int = typer.Option(512, help="Image height and width."),
    repeats: int = typer.Option(3, help="Timed runs per case after one warm-up."),
    steps: int = typer.Option(8, help="Denoising steps of the timed pipeline."),
    baseline_steps: int = typer.Option(
        50, help="Steps the diffusers baseline really runs (fewer: extrapolated to 50)."
    ),
    out: Path = typer.Option(Path("/tmp/sfmobile-bench"), help="Bundles, logs and results."),
    recipes: str = typer.Option(
        "",
        help="Comma-separated recipes (e.g. onnx-fp32,tflite-int8) instead of the product of "
        "--backends and --precisions.",
    ),
    cases: str = typer.Option(
        "",
        help="Comma-separated cases to time (e.g. unet_b2,pipeline,generate,diffusers_pipeline);"
        " only the bundles they need are exported. Default: all.",
    ),
    exports_only: bool = typer.Option(
        False, help="Export the bundles and stop (then time them with --reuse-bundles)."
    ),
    reuse_bundles: bool = typer.Option(
        False,
        help="Keep bundles already in OUT/bundles (sha256 checked) instead of exporting again: "
        "time the cases on an idle machine after exporting on a busy one.",
    ),
) -> None:
    """Results: OUT/results.jsonl, OUT/report.md, OUT/chart.png (--exports-only:
    OUT/exports.jsonl and the bundles)."""
    from rich.console import Console

    from sfmobile.bench.plan import Options
    from sfmobile.bench.report import write_reports
    from sfmobile.bench.runner import run
    from sfmobile.bench.variants import Source
    from sfmobile.errors import InputError
    from sfmobile.presets import PRESET_NAMES

    if model is None and preset not in PRESET_NAMES:
        raise InputError(f"--preset {preset!r}: expected one of {', '.join(PRESET_NAMES)}")
    if model is not None and not model.exists():
        raise InputError(f"--model {model}: no such file or folder")
    reference = reference_preset or ("tiny" if preset.startswith("tiny") else "sd15")
    if reference not in PRESET_NAMES:
        raise InputError(f"--reference-preset {reference!r}: expected one of {PRESET_NAMES}")
    source = Source(preset, str(model.resolve()) if model else None, reference)
    options = Options(
        source,
        _names(backends),
        _names(precisions),
        size,
        repeats,
        steps,
        baseline_steps,
        out,
        reuse_bundles,
        exports_only,
        _names(recipes),
        _names(cases),
    )
    console = Console()
    if source.random_weights:
        console.print(f"[bold]preset {preset} with random weights: the times hold, images don't")
    records = run(options, ["sfmobile", *sys.argv[1:]])
    if exports_only:
        failed = [r["name"] for r in records if r.get("status") == "failed"]
        console.print(f"exports: {out / 'exports.jsonl'}; failed: {', '.join(failed) or 'none'}")
        return
    report, png = write_reports(records, out)
    console.print(report.read_text())
    console.print(f"results: {out / 'results.jsonl'}, {report}, {png}")
