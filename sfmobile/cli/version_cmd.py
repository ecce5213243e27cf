"""`sfmobile version`: what is installed, for bug reports."""

import typer

import sfmobile
from sfmobile.cli.app import app


@app.command()
def version() -> None:
    """Print the sfmobile version."""
    typer.echo(sfmobile.__version__)
