"""`sfmobile verify`: does a bundle still make the same picture as the PyTorch reference?"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError


@app.command()
@user_errors_exit_2
def verify(
    bundle: Path = typer.Argument(..., help="The bundle folder."),
    reference: Path = typer.Option(
        None, help="Checkpoint the bundle was exported from (default: the manifest's source)."
    ),
    preset: str = typer.Option(None, help="Architecture of a single-file reference."),
    prompts: int = typer.Option(2, help="End-to-end images to compare."),
    seed: int = typer.Option(0, help="First seed of the compared images."),
    json_out: Path = typer.Option(None, "--json", help="Write the report here as JSON."),
) -> None:
    """Per-component errors and final-image PSNR against PyTorch; exit code 1 if it fails."""
    from sfmobile.bundle import read_bundle
    from sfmobile.output_paths import check_output_file, write_atomically
    from sfmobile.verify import THRESHOLDS, verify_bundle
    from sfmobile.weights import load_model

    if prompts < 1:
        raise InputError(f"--prompts must be >= 1, got {prompts}")
    if json_out:
        check_output_file(json_out, "--json")
    source = reference or Path(read_bundle(bundle, verify="sizes").manifest.created_by["source"])
    if not source.exists():
        raise InputError(f"--reference: the manifest's source {source} does not exist; name one")
    console = Console()
    with console.status("comparing against PyTorch"):
        report = verify_bundle(bundle, load_model(source, preset), prompts=prompts, seed=seed)
    table = Table(title=f"{bundle} ({report.backend})")
    for column in ("check", "precision", "max abs", "max rel", "PSNR dB", "max px", "result"):
        table.add_column(column)
    for c in report.components:
        verdict = "pass" if c.passed else "[red]FAIL[/red]"
        table.add_row(
            c.component, c.precision, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}", "", "", verdict
        )
    for i in report.images:
        verdict = "pass" if i.passed else "[red]FAIL[/red]"
        table.add_row(
            f"image seed {i.seed}", "", "", "", f"{i.psnr_db:.1f}", str(i.max_pixel_diff), verdict
        )
    console.print(table)
    limits = ", ".join(f"{k}: PSNR >= {v.min_psnr_db} dB" for k, v in THRESHOLDS.items())
    console.print(f"thresholds: fp32 components max abs <= 1e-4; {limits}")
    if json_out:
        text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
        write_atomically(json_out, text.encode())
    if not report.passed:
        raise typer.Exit(code=1)
    console.print("bundle verified")
