"""The typer app and the one error policy every command shares (docs/safety.md):

- a user error (SfmobileError, a usage error, an OSError naming a file, a module that an extra
  of a runtime-only install would bring: sfmobile/extras.py) prints one line `error: ...` on
  stderr and exits 2;
- anything else is a bug: one line naming it and a log file holding the traceback, exit 1
  (`sfmobile --debug ...` shows the traceback instead);
- Ctrl-C prints `interrupted` and exits 130.
Every float option must also be finite (checked before the command runs).
"""

import importlib
import inspect
import math
import sys
import tempfile
import traceback
from collections.abc import Callable
from functools import wraps
from typing import NoReturn, ParamSpec, TypeVar

import typer

from sfmobile.errors import InputError, SfmobileError
from sfmobile.extras import missing_extra
from sfmobile.quiet_logs import quiet_third_party_logs

app = typer.Typer(
    name="sfmobile",
    help="Take Stable-Diffusion-class text-to-image models onto phones (SnapFusion recipe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Set by the root callback for the command it precedes.
POLICY = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of an unexpected error instead of logging it."
    ),
) -> None:
    """sfmobile: export, run and verify efficient Stable-Diffusion-class models for phones."""
    POLICY["debug"] = debug


P = ParamSpec("P")
R = TypeVar("R")


def option_name(command: Callable, parameter: str) -> str:
    """The command-line spelling of a command's parameter (`json_out` -> `--json`)."""
    try:
        param = inspect.signature(command, eval_str=True).parameters[parameter]
    except (KeyError, NameError, TypeError, ValueError):
        return "--" + parameter.replace("_", "-")
    for info in (param.default, *getattr(param.annotation, "__metadata__", ())):
        names = [d for d in getattr(info, "param_decls", None) or () if d.startswith("--")]
        if names:
            return names[0]
    return "--" + parameter.replace("_", "-")


def check_finite_options(command: Callable, values: dict[str, object]) -> None:
    """Every float option (guidance, strength, learning rates...) must be a finite number:
    `nan` and `inf` parse as floats but would silently turn features off or give garbage."""
    for name, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, float) and not math.isfinite(item):
                option = option_name(command, name)
                raise InputError(f"{option} must be a finite number, got {item}")


def log_traceback(error: BaseException) -> str:
    """Write the traceback of an unexpected error to a new log file; its path."""
    handle, path = tempfile.mkstemp(prefix="sfmobile-error-", suffix=".log")
    with open(handle, "w") as log:
        log.write(f"sfmobile {' '.join(sys.argv[1:])}\n\n")
        traceback.print_exception(error, file=log)
    return path


def exit_unexpected(error: Exception) -> NoReturn:
    """A bug: one line with where the traceback went (or the traceback itself with --debug)."""
    if POLICY["debug"]:
        raise error
    summary = (str(error).strip().splitlines() or [""])[0]
    path = log_traceback(error)
    typer.echo(
        f"error: unexpected {type(error).__name__}: {summary} (a bug in sfmobile; traceback in "
        f"{path}; rerun with --debug to see it)",
        err=True,
    )
    raise typer.Exit(code=1) from None


def user_errors_exit_2(command: Callable[P, R]) -> Callable[P, R]:
    """Apply the error policy (module docstring) to a command: SfmobileError and OSError with a
    file name -> one line, exit 2; Ctrl-C -> `interrupted`, exit 130; anything else -> exit 1
    with a log file."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            check_finite_options(command, kwargs)
            return command(*args, **kwargs)
        except SfmobileError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(code=130) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own exits and usage errors (typer.Exit is a RuntimeError)
        except OSError as error:
            if error.filename is None:
                exit_unexpected(error)
            typer.echo(f"error: {error.filename}: {error.strerror or error}", err=True)
            raise typer.Exit(code=2) from None
        except ImportError as error:
            message = missing_extra(error, command.__name__)
            if message is None:
                exit_unexpected(error)
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(code=2) from None
        except Exception as error:
            exit_unexpected(error)

    return wrapper


# Command modules; importing one registers its command on `app` (add one name per module).
COMMAND_MODULES = (
    "cache_latents_cmd",
    "convert_cmd",
    "bench_cmd",
    "demo_cmd",
    "distill_cmd",
    "evaluate_cmd",
    "export_cmd",
    "generate_cmd",
    "golden_cmd",
    "model_cmd",
    "noise_cmd",
    "ship_demo_cmd",
    "swap_vae_cmd",
    "tokenize_cmd",
    "train_cmd",
    "train_decoder_cmd",
    "train_unet_cmd",
    "verify_cmd",
    "version_cmd",
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"sfmobile.cli.{name}")


def run(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default: sys.argv[1:]); the exit code. Usage errors
    become one line too, naming the command's --help."""
    try:
        quiet_third_party_logs()
        _register_commands()
        code = app(args=argv, prog_name="sfmobile", standalone_mode=False)
    except typer.TyperException as error:  # typer's (vendored click's) usage errors
        code = getattr(error, "exit_code", 2)
        context = getattr(error, "ctx", None)
        where = f" (see `{context.command_path} --help`)" if context and code == 2 else ""
        typer.echo(f"error: {error.format_message()}{where}", err=True)
        return code
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        return 130
    return code if isinstance(code, int) else 0


def main(argv: list[str] | None = None) -> NoReturn:
    """The `sfmobile` console script."""
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
