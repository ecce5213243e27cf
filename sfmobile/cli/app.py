"""The typer app and the error policy shared by every command.

Errors sfmobile raises on purpose become one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""

import importlib
import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer

from sfmobile.errors import SfmobileError
from sfmobile.log_noise import quiet_third_party_logs

app = typer.Typer(
    name="sfmobile",
    help="Take Stable-Diffusion-class text-to-image models onto phones (SnapFusion recipe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """sfmobile: export, run and verify efficient Stable-Diffusion-class models for phones."""


P = ParamSpec("P")
R = TypeVar("R")


def user_errors_exit_2(command: Callable[P, R]) -> Callable[P, R]:
    """Turn SfmobileError into `error: message` on stderr and exit code 2, without a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SfmobileError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper


# Command modules; importing one registers its command on `app` (add one name per module).
COMMAND_MODULES = (
    "bench_cmd",
    "demo_cmd",
    "distill_cmd",
    "evaluate_cmd",
    "export_cmd",
    "generate_cmd",
    "golden_cmd",
    "info_cmd",
    "model_cmd",
    "noise_cmd",
    "ship_demo_cmd",
    "swap_vae_cmd",
    "tokenize_cmd",
    "train_cmd",
    "train_decoder_cmd",
    "verify_cmd",
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"sfmobile.cli.{name}")


def main() -> None:
    quiet_third_party_logs()
    _register_commands()
    app(prog_name="sfmobile")


if __name__ == "__main__":
    sys.exit(main())
