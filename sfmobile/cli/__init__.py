"""The `sfmobile` command line: one module per command, registered on one typer app."""

from sfmobile.cli.app import app, main

__all__ = ["app", "main"]
