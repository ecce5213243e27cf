"""`sfmobile evaluate`: the SnapFusion-style table (adherence / FD-VAE64 / s per picture) of
trained models on the held-out scenes (docs/training.md, "Evaluation")."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sfmobile.cli.app import app, user_errors_exit_2
from sfmobile.errors import InputError
from sfmobile.output_paths import check_output_file, write_atomically

if TYPE_CHECKING:
    from sfmobile.train.evaluation.eval_table import ModelSpec
    from sfmobile.train.evaluation.frechet import VaeFeatures

MODEL_SPEC = re.compile(
    r"^(?P<label>[^=]+)=(?P<path>.+?)(?:@(?P<steps>\d+)(?::(?P<spacing>[a-z]+))?)?$"
)
MODEL_SPEC_HELP = "LABEL=PATH, LABEL=PATH@STEPS or LABEL=PATH@STEPS:SPACING"


def parse_model_spec(text: str) -> ModelSpec:
    """`LABEL=PATH[@STEPS[:SPACING]]` -> ModelSpec; the path must exist."""
    from sfmobile.scheduler import TIMESTEP_SPACINGS
    from sfmobile.train.evaluation.eval_table import ModelSpec

    match = MODEL_SPEC.match(text.strip())
    if not match or not match["label"].strip():
        raise InputError(f"--model {text!r}: expected {MODEL_SPEC_HELP}")
    spacing = match["spacing"]
    if spacing is not None and spacing not in TIMESTEP_SPACINGS:
        raise InputError(
            f"--model {text!r}: SPACING {spacing!r} is not one of {', '.join(TIMESTEP_SPACINGS)}"
        )
    path = Path(match["path"])
    if not path.exists():
        raise InputError(f"--model {text!r}: {path} does not exist")
    steps = int(match["steps"]) if match["steps"] else None
    if steps == 0:
        raise InputError(f"--model {text!r}: STEPS must be at least 1")
    return ModelSpec(match["label"].strip(), path, steps, spacing)


def parse_guidance(text: str) -> tuple[float, ...]:
    """`1,4.5,7.5` -> (1.0, 4.5, 7.5): finite scales >= 0, each once."""
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--guidance {text!r}: expected comma-separated numbers") from None
    if any(not math.isfinite(w) or w < 0 for w in scales):
        raise InputError(f"--guidance {text!r}: scales must be finite and >= 0")
    if len(set(scales)) != len(scales):
        raise InputError(f"--guidance {text!r}: a scale is repeated")
    return scales


def load_extractor(path: Path) -> VaeFeatures:
    """FD features from a `train vae` folder (or its vae/) or any model weights.load_model reads."""
    from sfmobile.train.evaluation.frechet import VaeFeatures
    from sfmobile.train.stages.vae import CONFIG_FILE, VAE_FOLDER, load_vae
    from sfmobile.weights import load_model

    if not path.exists():
        raise InputError(f"--features {path}: no such file or folder")
    if (path / CONFIG_FILE).is_file() or (path / VAE_FOLDER / CONFIG_FILE).is_file():
        return VaeFeatures(load_vae(path), str(path))
    return VaeFeatures(load_model(path).vae, f"{path} (its VAE)")


@app.command()
@user_errors_exit_2
def evaluate(
    model: list[str] = typer.Option(
        ...,
        help=f"{MODEL_SPEC_HELP}, once per table row (default STEPS: the model's; SPACING "
        "leading, trailing or linspace replaces the model's timestep spacing, e.g. ':leading' "
        "samples as SD-1.5's DDIM does).",
    ),
    guidance: str = typer.Option("1,4.5,7.5", help="Guidance scales, one column each."),
    prompts: int = typer.Option(200, help="Held-out prompts (one picture each)."),
    seed: int = typer.Option(0, help="Picture i starts from the noise of seed + i."),
    prompt_seed: int = typer.Option(0, help="Seed of the held-out prompt set."),
    image_size: int = typer.Option(64, help="Picture size the models were trained at."),
    batch_size: int = typer.Option(25, help="Prompts sampled at once."),
    features: Path = typer.Option(
        None, help="VAE for FD (a `train vae` folder or a model); default: the first model's."
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the table as JSON here."),
    markdown_out: Path = typer.Option(None, "--markdown", help="Write the table as Markdown here."),
    threads: int = typer.Option(None, help="torch threads (default: torch's choice)."),
) -> None:
    """Prompt adherence, FD-VAE64 and seconds per picture for each model x guidance scale."""
    import torch

    from sfmobile.train.evaluation.eval_table import run_table
    from sfmobile.train.evaluation.evaluate import EvalConfig

    for option, path in (("--json", json_out), ("--markdown", markdown_out)):
        if path:
            check_output_file(path, option)
    specs = [parse_model_spec(text) for text in model]
    rows = [(spec.row_label, spec.steps) for spec in specs]
    if len(set(rows)) != len(rows):
        raise InputError("--model: two rows have the same LABEL and STEPS")
    if prompts < 2:
        raise InputError(f"--prompts must be at least 2, got {prompts}")
    if seed < 0 or prompt_seed < 0:
        raise InputError("--seed and --prompt-seed must be >= 0")
    config = EvalConfig(
        prompts, prompt_seed, seed, parse_guidance(guidance), image_size, batch_size
    )
    extractor = load_extractor(features) if features else None
    if threads:
        torch.set_num_threads(threads)
    console = Console(stderr=True)
    total = len(specs) * len(config.guidance) * prompts
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("evaluating", total=total)

        def advance(cell: str, count: int) -> None:
            progress.update(task, advance=count, description=escape(cell))

        table = run_table(specs, config, extractor, on_batch=advance)
    markdown = table.to_markdown()
    for path, text in (
        (json_out, json.dumps(table.to_dict(), indent=2) + "\n" if json_out else ""),
        (markdown_out, markdown + "\n"),
    ):
        if path:
            write_atomically(path, text.encode())
            console.print(f"wrote {path}")
    typer.echo(markdown)
