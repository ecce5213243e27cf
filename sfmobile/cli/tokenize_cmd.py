"""`sfmobile tokenize`: show the 77 ids a prompt becomes, to compare with other tokenizers."""

import json
from pathlib import Path
from typing import Annotated

import typer

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.tokenizer import ClipTokenizer


@app.command()
@user_errors_exit_2
def tokenize(
    prompts: Annotated[list[str], typer.Argument(help="One or more prompts.", show_default=False)],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="Tokenizer folder (vocab.json, merges.txt); default: CLIP's own."),
    ] = None,
) -> None:
    """Print each prompt's token ids as a JSON array, one line per prompt."""
    clip = ClipTokenizer.default() if tokenizer is None else ClipTokenizer.from_folder(tokenizer)
    for ids in clip.encode_batch(prompts):
        typer.echo(json.dumps(ids))
