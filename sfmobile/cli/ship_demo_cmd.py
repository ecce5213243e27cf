"""`sfmobile ship-demo`: the training runs' student + decoder -> the demo model in the package."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.shipped import SHIPPED_DEMO_DIR


@app.command("ship-demo")
@user_errors_exit_2
def ship_demo(
    student: Path = typer.Option(..., help="Distilled student checkpoint, e.g. runs/s8/student."),
    decoder: Path = typer.Option(..., help="Compressed decoder run, e.g. runs/decoder/decoder."),
    out: Path = typer.Option(SHIPPED_DEMO_DIR, help="Checkpoint folder to write (replaced)."),
) -> None:
    """Student + decoder runs -> the fp16 demo model in the package (refused above 40 MB)."""
    from sfmobile.output_paths import check_output_folder
    from sfmobile.train.assembly import ship_demo as shipping
    from sfmobile.weights.sfmobile_checkpoint import FORMAT as CHECKPOINT_FORMAT

    sources = [("--student", student), ("--decoder", decoder)]
    check_output_folder(out, CHECKPOINT_FORMAT, sources=sources)
    console = Console(stderr=True)
    with console.status("assembling the demo model"):
        sizes = shipping.ship_demo(student, decoder, out)
    table = Table(title=f"{out} (fp16)")
    for column in ("component", "parameters", "MB"):
        table.add_column(column)
    for size in sizes:
        table.add_row(size.name, f"{size.parameters:,}", f"{size.bytes / 1e6:.2f}")
    table.add_row(
        "total", f"{sum(s.parameters for s in sizes):,}", f"{sum(s.bytes for s in sizes) / 1e6:.2f}"
    )
    console.print(table)
    console.print(f"wrote {out}")
