"""`sfmobile golden`: write the golden vectors the Kotlin core's tests read."""

from pathlib import Path
from typing import Annotated

import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError


@app.command()
@user_errors_exit_2
def golden(
    out: Annotated[Path, typer.Option(help="Folder (tests/golden in the repository).")],
) -> None:
    """Write the cross-language files (noise, tokenizer, scheduler vectors, the bundle corpus and
    replay recordings of the demo model) into sub-folders of OUT; about a minute."""
    from sfmobile.golden import write_all

    if out.exists() and not out.is_dir():
        raise InputError(f"--out is a file, not a folder: {out}")
    for folder in write_all(out):
        typer.echo(f"wrote {folder}")
