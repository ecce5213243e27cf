"""`sfmobile demo`: export the shipped model to every bundle kind, run the same prompts on every
backend, and write a Markdown report comparing images, agreement, timings and sizes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from sfmobile.apps.demo_result import RECIPES
from sfmobile.cli.app import app, user_errors_exit_2


class RichProgress:
    """One bar per phase (load, export, generate); notes show what runs right now."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.name = ""

    def phase(self, name: str, total: int) -> None:
        self.name = name
        self.task = self.progress.add_task(name, total=total, status="")

    def advance(self, label: str) -> None:
        self.progress.update(self.task, advance=1, status=label)

    def note(self, label: str) -> None:
        self.progress.update(self.task, status=label)


@app.command()
@user_errors_exit_2
def demo(
    out: Path = typer.Option(Path("sfmobile-demo"), help="Folder for report.md, images, bundles."),
    prompts: int = typer.Option(4, help="How many held-out captions to draw."),
    backends: str = typer.Option(
        ",".join(RECIPES), help="Comma-separated; torch always runs (the reference)."
    ),
    model: Path = typer.Option(
        None, help="Checkpoint to use instead of the shipped demo model.", show_default=False
    ),
    size: int = typer.Option(
        None, help="Square image size (default: 64, the demo model's).", show_default=False
    ),
    seed: int = typer.Option(0, help="Seed of the first prompt (the next ones count up)."),
    torch_threads: int = typer.Option(
        None,
        help="Threads of the torch reference (default: torch's; 1 is far faster on a busy "
        "machine).",
        show_default=False,
    ),
) -> None:
    """Export every bundle kind, run the same prompts on each, write OUT/report.md."""
    from sfmobile.apps.demo import DemoConfig, run_demo

    config = DemoConfig(
        out=out,
        model=model,
        prompts=prompts,
        backends=tuple(name.strip() for name in backends.split(",") if name.strip()),
        size=size,
        seed=seed,
        torch_threads=torch_threads,
    )
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    ) as progress:
        report = run_demo(config, RichProgress(progress))
    console.print(f"wrote {report}")
