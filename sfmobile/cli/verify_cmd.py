"""`sfmobile verify`: does a bundle still make the same picture as the PyTorch reference?"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
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
    """Per-component errors (the UNet at every step) and final-image PSNR against PyTorch, each
    judged against its precision's threshold; exit code 1 if any check fails."""
    from sfmobile.bundle import read_bundle
    from sfmobile.output_paths import check_output_file, write_atomically
    from sfmobile.verify import verify_bundle
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
    table = Table(title=f"{bundle} ({report.backend}): components on identical inputs")
    for column in ("check", "precision", "max abs", "rel error", "limit", "result"):
        table.add_column(column)
    for c in report.components:
        table.add_row(
            c.name, c.precision, f"{c.max_abs:.2e}", f"{c.rel_error:.2e}", f"{c.threshold:g}",
            _verdict(c.passed),
        )  # fmt: skip
    console.print(table)
    table = Table(title="final images")
    for column in ("seed", "PSNR dB", "max pixel diff", "limit dB", "result"):
        table.add_column(column)
    for i in report.images:
        table.add_row(
            str(i.seed), f"{i.psnr_db:.1f}", str(i.max_pixel_diff), f"{i.min_psnr_db:g}",
            _verdict(i.passed),
        )  # fmt: skip
    console.print(table)
    for line in report.failures():
        console.print(f"[red]FAIL[/red] {escape(line)}", soft_wrap=True)  # one line, greppable
    if json_out:
        text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
        write_atomically(json_out, text.encode())
    if not report.passed:
        raise typer.Exit(code=1)
    console.print("bundle verified")


def _verdict(passed: bool) -> str:
    return "pass" if passed else "[red]FAIL[/red]"
